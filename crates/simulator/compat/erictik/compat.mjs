// erictik/midjourney-api (npm `midjourney`), unchanged, against the Atelier simulator:
// Imagine, Upscale, Variation, Reroll and Describe. SIM_INFO is the JSON line printed by
// `cargo run -p atelier-simulator --example serve`.
import { Midjourney } from "midjourney";

const info = JSON.parse(process.env.SIM_INFO);
const account = info.accounts[0];
const client = new Midjourney({
  ServerId: account.guild_id,
  ChannelId: account.channel_id,
  SalaiToken: account.token,
  DiscordBaseUrl: info.cdn_base,
  WsBaseUrl: `${info.gateway_url}/?encoding=json&v=9`,
  Ws: true,
  Debug: Boolean(process.env.DEBUG),
});

const failures = [];
function check(what, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${detail ? ` (${detail})` : ""}`);
  if (!ok) failures.push(what);
}

async function png(uri) {
  const response = await fetch(uri);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return response.ok && bytes[0] === 0x89 && bytes[1] === 0x50 ? bytes.length : 0;
}

const watchdog = setTimeout(() => {
  console.log("FAIL timed out");
  process.exit(1);
}, 120_000);

await client.Connect();
check("Connect (command index + gateway READY)", true);

const prompt = "a lighthouse at dusk --ar 1:1";
let updates = 0;
const imagine = await client.Imagine(prompt, () => updates++);
check("Imagine returns the grid", Boolean(imagine?.uri && imagine?.hash), imagine?.content);
check("Imagine saw progress updates", updates > 0, `${updates}`);
check("Imagine: 9 buttons", imagine?.options?.length === 9);
check("Imagine: grid downloads as PNG", (await png(imagine.uri)) > 0);

const upscale = await client.Upscale({
  index: 2,
  msgId: imagine.id,
  hash: imagine.hash,
  flags: imagine.flags,
  content: imagine.content,
  loading: () => {},
});
check("Upscale U2", Boolean(upscale?.uri), upscale?.content);
check("Upscale: Image #2", Boolean(upscale?.content?.includes("Image #2")));
check("Upscale: image downloads as PNG", (await png(upscale.uri)) > 0);

const variation = await client.Variation({
  index: 1,
  msgId: imagine.id,
  hash: imagine.hash,
  flags: imagine.flags,
  content: imagine.content,
  loading: () => {},
});
check("Variation V1", Boolean(variation?.content?.includes("Variations by")), variation?.content);

const reroll = await client.Reroll({
  msgId: imagine.id,
  hash: imagine.hash,
  flags: imagine.flags,
  content: imagine.content,
  loading: () => {},
});
check("Reroll", Boolean(reroll?.uri) && reroll.hash !== imagine.hash, reroll?.content);

const describe = await client.Describe(upscale.uri);
check("Describe", describe?.descriptions?.length === 4, describe?.descriptions?.[0]);

clearTimeout(watchdog);
client.Close();
console.log(failures.length === 0 ? "PASS" : `FAILED: ${failures.join(", ")}`);
process.exit(failures.length === 0 ? 0 : 1);
