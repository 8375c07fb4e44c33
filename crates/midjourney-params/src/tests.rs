//! Every rule of the table, per version, and the messages the bot and the app show.

use super::*;

fn refusal(prompt: &str) -> String {
    match check(prompt, Version::DEFAULT) {
        Ok(v) => panic!("{prompt:?} accepted (as {v})"),
        Err(r) => r.to_string(),
    }
}

fn accepted(prompt: &str) -> Version {
    check(prompt, Version::DEFAULT).unwrap_or_else(|r| panic!("{prompt:?} refused: {r}"))
}

/// A value `accepts` takes, for walking the table.
fn sample(accepts: Accepts) -> String {
    match accepts {
        Accepts::Flag | Accepts::OptionalText | Accepts::Niji => String::new(),
        Accepts::Range { min, .. } => min.to_string(),
        Accepts::Numbers(numbers) => numbers[0].to_string(),
        Accepts::Words(words) => words[0].to_owned(),
        Accepts::Ratio { .. } => "3:2".to_owned(),
        Accepts::Text | Accepts::Url => "https://example.com/a.png".to_owned(),
        Accepts::Version => "7".to_owned(),
    }
}

#[test]
fn every_parameter_follows_its_rules_in_every_version() {
    for param in PARAMS {
        if matches!(param.key, "version" | "niji") {
            continue;
        }
        for &version in Version::ALL {
            for name in param.names {
                let rule = param.rule(version);
                let value = rule.map_or_else(|| "1".to_owned(), |r| sample(r.accepts));
                // An image prompt first and `--video` with its own parameters: video's rules
                // (`video_goes_with_…`) hold in every version.
                let video = if VIDEO_ONLY.contains(&param.key) {
                    "--video "
                } else {
                    ""
                };
                let prompt =
                    format!("https://example.com/a.png a fox --{name} {value} {video}{version}");
                let expected = match rule {
                    Some(_) => Ok(version),
                    None => Err(Refusal::Incompatible {
                        name: (*name).to_owned(),
                        version,
                    }),
                };
                assert_eq!(check(&prompt, Version::DEFAULT), expected, "{prompt}");
            }
        }
    }
}

#[test]
fn v7_and_v8_1_share_the_common_parameters() {
    for version in ["7", "8.1"] {
        for params in [
            "--ar 16:9",
            "--style raw",
            "--p",
            "--p abc123",
            "--sref https://example.com/s.png",
            "--sw 250",
            "--s 250",
            "--stylize 1000",
            "--no red, blue",
            "--tile",
            "--exp 25",
            "--chaos 40",
            "--weird 3000",
            "--seed 4294967295",
            "--iw 2",
        ] {
            let prompt = format!("a fox {params} --v {version}");
            assert!(check(&prompt, Version::DEFAULT).is_ok(), "{prompt}");
        }
    }
}

#[test]
fn v7_alone_has_omni_references_quality_and_draft() {
    for params in [
        "--oref https://example.com/o.png --ow 200",
        "--q 1",
        "--q 2",
        "--quality 4",
        "--draft",
    ] {
        assert_eq!(accepted(&format!("a fox {params} --v 7")), Version::V7);
        assert!(
            refusal(&format!("a fox {params} --v 8.1"))
                .ends_with("is not compatible with --version 8.1"),
            "{params}"
        );
    }
    assert_eq!(refusal("a fox --q 3 --v 7"), "--q 3: expected 1, 2 or 4");
    assert_eq!(refusal("a fox --q .5 --v 7"), "--q .5: expected 1, 2 or 4");
    assert_eq!(
        refusal("a fox --q 2"),
        "--q is not compatible with --version 8.1"
    );
    // Midjourney runs an omni-reference prompt on V7 when no version is given.
    assert_eq!(
        accepted("a fox --oref https://example.com/o.png"),
        Version::V7
    );
    assert_eq!(
        check(
            "a fox --oref https://example.com/o.png",
            Version::NIJI_DEFAULT
        ),
        Err(Refusal::Incompatible {
            name: "oref".into(),
            version: Version::Niji7
        })
    );
}

#[test]
fn the_v8_family_alone_has_hd_sd_and_sv_7() {
    for params in ["--hd", "--sd", "--sv 7"] {
        assert_eq!(accepted(&format!("a fox {params}")), Version::V8_1);
        assert_eq!(accepted(&format!("a fox {params} --v 8")), Version::V8);
    }
    assert_eq!(
        refusal("a fox --hd --v 7"),
        "--hd is not compatible with --version 7"
    );
    assert_eq!(
        refusal("a fox --sd --v 6.1"),
        "--sd is not compatible with --version 6.1"
    );
    assert_eq!(
        refusal("a fox --sv 7 --v 7"),
        "--sv 7: expected 1, 2, 3, 4, 5 or 6"
    );
    assert_eq!(accepted("a fox --sv 4 --v 7"), Version::V7);
    // V8.1 has no turbo mode; V7 has.
    assert_eq!(
        refusal("a fox --turbo"),
        "--turbo is not compatible with --version 8.1"
    );
    assert_eq!(accepted("a fox --turbo --v 7"), Version::V7);
}

#[test]
fn stop_is_refused_from_v7_on() {
    assert_eq!(
        refusal("a fox --stop 50 --v 7"),
        "--stop is not compatible with --version 7"
    );
    assert_eq!(
        refusal("a fox --stop 50"),
        "--stop is not compatible with --version 8.1"
    );
    assert_eq!(
        refusal("a fox --stop 50 --niji 7"),
        "--stop is not compatible with --niji 7"
    );
    for version in ["--v 6.1", "--v 5.2", "--v 4", "--niji 6"] {
        assert!(
            check(&format!("a fox --stop 50 {version}"), Version::DEFAULT).is_ok(),
            "{version}"
        );
    }
    assert_eq!(
        refusal("a fox --stop 5 --v 6"),
        "--stop 5: expected a number from 10 to 100"
    );
}

#[test]
fn niji_6_and_7() {
    assert_eq!(accepted("a fox --niji 6"), Version::Niji6);
    assert_eq!(accepted("a fox --niji 7"), Version::Niji7);
    assert_eq!(accepted("a fox --niji"), Version::NIJI_DEFAULT);
    assert_eq!(
        check("a fox", Version::NIJI_DEFAULT),
        Ok(Version::NIJI_DEFAULT)
    );
    assert_eq!(
        accepted("a fox --niji 6 --cref https://e.com/c.png --cw 50"),
        Version::Niji6
    );
    assert_eq!(
        refusal("a fox --niji 7 --cref https://e.com/c.png"),
        "--cref is not compatible with --niji 7"
    );
    assert_eq!(accepted("a fox --niji 7 --q 4"), Version::Niji7);
    assert_eq!(accepted("a fox --niji 5 --style scenic"), Version::Niji5);
    assert_eq!(
        refusal("a fox --niji 6 --style scenic"),
        "--style scenic: expected raw"
    );
    assert_eq!(
        refusal("a fox --niji 8"),
        "--niji 8: expected nothing, 4, 5, 6 or 7"
    );
    assert_eq!(
        refusal("a fox --niji 6 --v 7"),
        "--niji is not compatible with --version 7"
    );
}

#[test]
fn older_versions_as_the_simulator_knows_them() {
    assert_eq!(
        accepted("a fox --v 6 --cref https://e.com/c.png"),
        Version::V6
    );
    assert_eq!(accepted("a fox --v 6.1 --q .25"), Version::V6_1);
    assert_eq!(accepted("a fox --v 5.0 --q 0.5"), Version::V5);
    assert_eq!(accepted("a fox --v 4 --style 4c --ar 2:1"), Version::V4);
    assert_eq!(
        refusal("a fox --v 4 --ar 3:1"),
        "--ar 3:1: expected W:H in whole numbers, from 1:2 to 2:1"
    );
    assert_eq!(accepted("a fox --v 3 --ar 5:2 --hd"), Version::V3);
    assert_eq!(
        refusal("a fox --v 5 --style raw"),
        "--style is not compatible with --version 5"
    );
    assert_eq!(
        refusal("a fox --v 99"),
        "--v 99: expected 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7, 8 or 8.1"
    );
    assert_eq!(
        refusal("a fox --version 9"),
        "--version 9: expected 1, 2, 3, 4, 5, 5.1, 5.2, 6, 6.1, 7, 8 or 8.1"
    );
}

#[test]
fn aspect_ratios_are_whole_positive_and_not_absurd() {
    for ok in [
        "1:1",
        "16:9",
        "9:16",
        "139:100",
        "128:9",
        "9:128",
        "1000:1000",
    ] {
        assert!(
            check(&format!("a fox --ar {ok}"), Version::DEFAULT).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "99999:1", "1:99999", "129:9", "15:1", "0:1", "1:0", "-1:1", "1.5:1", "16", "16:9:1",
        "a:b", "",
    ] {
        let refused = check(&format!("a fox --ar {bad}"), Version::DEFAULT);
        assert!(
            matches!(refused, Err(Refusal::Value { ref name, .. }) if name == "ar"),
            "{bad}: {refused:?}"
        );
        assert!(read(&format!("a fox --ar {bad}")).is_err(), "{bad}");
    }
    assert_eq!(
        refusal("a fox --ar 99999:1"),
        "--ar 99999:1: expected W:H in whole numbers, from 9:128 to 128:9"
    );
    assert_eq!(
        refusal("a fox --ar"),
        "--ar: expected W:H in whole numbers, from 9:128 to 128:9"
    );
}

#[test]
fn values_are_checked() {
    for bad in [
        "--s 5000",
        "--c -1",
        "--c lots",
        "--seed 4294967296",
        "--seed -1",
        "--seed 1.5",
        "--tile 3",
        "--r 0",
        "--r 2.5",
        "--motion medium",
        "--bs 3",
        "--no",
        "--s NaN",
        "--s inf",
    ] {
        let prompt = format!("a fox {bad}");
        assert!(
            matches!(check(&prompt, Version::DEFAULT), Err(Refusal::Value { .. })),
            "{prompt}"
        );
        assert!(read(&prompt).is_err(), "{prompt}");
    }
    assert_eq!(refusal("a fox --tile 3"), "--tile 3: expected no value");
}

#[test]
fn unknown_and_repeated_parameters() {
    assert_eq!(
        refusal("a red fox --foo 3 --bar"),
        "Unrecognized parameter(s): `--foo`, `--bar`"
    );
    assert_eq!(
        refusal("a fox --ar 1:1 --aspect 2:3"),
        "--aspect is given twice"
    );
    assert_eq!(
        read("a fox --seed 1 --sameseed 2"),
        Err(Refusal::Twice {
            name: "sameseed".into()
        })
    );
}

#[test]
fn empty_prompts() {
    assert_eq!(check("--ar 1:1", Version::DEFAULT), Err(Refusal::Empty));
    assert_eq!(
        check(
            "\u{200B}\u{200C}\u{200D} \u{2060}\u{FEFF} --ar 1:1",
            Version::DEFAULT
        ),
        Err(Refusal::Empty)
    );
    assert!(is_blank("\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}"));
    assert!(is_blank(
        " \u{00AD}\u{180E}\u{3164}\u{FE0F}\u{E0041}\u{2800}\t"
    ));
    assert!(!is_blank("\u{200B}a"));
    assert!(!is_blank("狐"));
}

#[test]
fn parsing() {
    let p = parse("a red fox —ar 16:9 --no cars, trees --TILE");
    assert_eq!(p.text, ["a", "red", "fox"]);
    let names: Vec<&str> = p.params.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["ar", "no", "tile"]);
    assert_eq!(p.params[1].values, ["cars,", "trees"]);
    let plain = parse("a well-lit room -- with dashes --5 --");
    assert!(plain.params.is_empty());
    assert_eq!(plain.text.len(), 8);
}

#[test]
fn read_checks_values_every_version_accepts_and_keeps_unknown_names() {
    // No version takes these.
    for bad in ["--q 3", "--v 99", "--ar 99999:1", "--sv 8", "--niji 3"] {
        assert!(read(&format!("a fox {bad}")).is_err(), "{bad}");
    }
    assert_eq!(
        read("a fox --q 3").map(|_| ()),
        Err(Refusal::Value {
            name: "q".into(),
            value: "3".into(),
            expected: "1, 2 or 4".into()
        })
    );
    // Which version takes which parameter is the bot's business, not every provider's.
    let (text, params) = read("a fox --stop 50 --v 7 --q .5 --steps 30 --hdr").unwrap();
    assert_eq!(text, ["a", "fox"]);
    let keys: Vec<&str> = params.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["stop", "version", "quality", "steps", "hdr"]);
    assert_eq!(params[0].value, Value::Number(50.0));
    assert_eq!(params[1].value, Value::Text("7".into()));
    assert_eq!(params[2].value, Value::Number(0.5));
    assert_eq!(params[3].value, Value::Text("30".into()));
    assert!(params[3].param.is_none());
    assert_eq!(params[4].value, Value::Flag);
}

#[test]
fn video_goes_with_an_image_prompt_and_its_flags_with_video() {
    let image = "https://example.com/fox.png a fox";
    for ok in [
        format!("{image} --video"),
        "<https://s.mj.run/abc> a fox --video 1 --motion high --raw --bs 2".to_owned(),
        format!("{image} --video --end https://example.com/end.png"),
        format!("{image} --video --loop --motion low"),
    ] {
        assert_eq!(check(&ok, Version::DEFAULT).map(|_| ()), Ok(()), "{ok}");
    }
    assert_eq!(
        refusal("a fox --video"),
        "--video needs an image prompt (a picture's URL first)"
    );
    assert_eq!(
        refusal(&format!("{image} --end https://example.com/end.png")),
        "--end needs --video"
    );
    assert_eq!(refusal("a fox --motion high"), "--motion needs --video");
    assert_eq!(refusal("a fox --loop"), "--loop needs --video");
    assert_eq!(refusal("a fox --bs 2"), "--bs needs --video");
    assert_eq!(
        refusal(&format!(
            "{image} --video --loop --end https://example.com/e.png"
        )),
        "--loop cannot be used with --end"
    );
    // The value is judged first: a bad --motion is a bad value, video or not.
    assert!(matches!(
        check("a fox --motion medium", Version::DEFAULT),
        Err(Refusal::Value { .. })
    ));
}

#[test]
fn oref_and_end_take_a_pictures_url_and_nothing_else() {
    let image = "https://example.com/fox.png a fox";
    for (url_ok, prompt) in [
        (true, "a fox --oref https://example.com/o.png".to_owned()),
        (true, "a fox --oref <https://s.mj.run/abc>".to_owned()),
        (
            true,
            "a fox --oref HTTP://127.0.0.1:8080/o.png?x=1".to_owned(),
        ),
        (
            true,
            format!("{image} --video --end https://example.com/end.png"),
        ),
    ] {
        assert_eq!(check(&prompt, Version::DEFAULT).is_ok(), url_ok, "{prompt}");
    }
    for (prompt, says) in [
        (
            "a fox --oref o.png",
            "--oref o.png: expected a picture's URL, http:// or https://",
        ),
        (
            "a fox --oref ftp://example.com/o.png",
            "--oref ftp://example.com/o.png: expected a picture's URL, http:// or https://",
        ),
        (
            "a fox --oref https://",
            "--oref https://: expected a picture's URL, http:// or https://",
        ),
        (
            "a fox --oref https://a.png https://b.png",
            "--oref https://a.png https://b.png: expected a picture's URL, http:// or https://",
        ),
        (
            "a fox --oref <https://example.com/o.png",
            "--oref <https://example.com/o.png: expected a picture's URL, http:// or https://",
        ),
        (
            "a fox --oref https://user@example.com/o.png",
            "--oref https://user@example.com/o.png: expected a picture's URL, http:// or https://",
        ),
    ] {
        assert_eq!(refusal(prompt), says, "{prompt}");
    }
    let end = format!("{image} --video --end loop");
    assert_eq!(
        refusal(&end),
        "--end loop: expected a picture's URL, http:// or https://"
    );
    // Every provider's reading refuses them in the same words, naming the parameter.
    assert_eq!(
        read("a fox --oref o.png").map(|_| ()),
        Err(Refusal::Value {
            name: "oref".into(),
            value: "o.png".into(),
            expected: "a picture's URL, http:// or https://".into(),
        })
    );
    assert!(read("a fox --end www.example.com/e.png").is_err());
    assert!(read("a fox --oref https://example.com/o.png").is_ok());
}
