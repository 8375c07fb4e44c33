//! Worker processes of a measurement: children of this binary on one database, each printing
//! one JSON document on stdout when it is done. A child that waits for the start (`ready`
//! handshake) is timed from the moment all of them are connected; the others from their spawn.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::error::AppError;

/// What a waiting child prints once it can start, and reads before it starts.
pub const READY: &str = "ready";
pub const GO: &str = "go";

/// How long a child may take to connect before the measurement gives up.
const READY_TIMEOUT: Duration = Duration::from_mins(1);

struct One {
    child: Child,
    out: Option<BufReader<ChildStdout>>,
}

/// A child is killed if dropped before it ends (a failed measurement leaves none behind).
impl Drop for One {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Running children.
pub struct Children(Vec<One>);

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(e.to_string())
}

impl Children {
    /// Starts `count` children of this binary, each made by `command` from its index.
    pub fn spawn(count: u32, command: impl Fn(u32, Command) -> Command) -> Result<Self, AppError> {
        let exe = std::env::current_exe().map_err(internal)?;
        let mut all = Vec::new();
        for i in 0..count {
            let mut child = command(i, Command::new(&exe))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| AppError::Internal(format!("cannot start a worker process: {e}")))?;
            let out = child.stdout.take().map(BufReader::new);
            all.push(One { child, out });
        }
        Ok(Self(all))
    }

    /// Waits until every child has printed [`READY`].
    pub async fn ready(&mut self) -> Result<(), AppError> {
        let mut outs: Vec<_> = self.0.iter_mut().map(|o| o.out.take()).collect();
        let read = tokio::task::spawn_blocking(move || {
            for out in &mut outs {
                let out = out.as_mut().ok_or("a worker process has no output")?;
                let mut line = String::new();
                out.read_line(&mut line).map_err(|e| e.to_string())?;
                if line.trim() != READY {
                    return Err("a worker process stopped before it was ready".to_owned());
                }
            }
            Ok(outs)
        });
        let outs = tokio::time::timeout(READY_TIMEOUT, read)
            .await
            .map_err(|_| internal("the worker processes were not ready within 60 s"))?
            .map_err(internal)?
            .map_err(AppError::Internal)?;
        for (one, out) in self.0.iter_mut().zip(outs) {
            one.out = out;
        }
        Ok(())
    }

    /// Tells every child to start.
    pub fn go(&mut self) -> Result<(), AppError> {
        for one in &mut self.0 {
            let mut stdin = one
                .child
                .stdin
                .take()
                .ok_or_else(|| internal("a worker process has no input"))?;
            writeln!(stdin, "{GO}").map_err(internal)?;
        }
        Ok(())
    }

    /// Waits for every child to end and returns what each printed; an error if one failed.
    pub async fn results(self) -> Result<Vec<serde_json::Value>, AppError> {
        let all = self.0;
        tokio::task::spawn_blocking(move || {
            let mut results = Vec::new();
            for mut one in all {
                drop(one.child.stdin.take());
                let mut text = String::new();
                if let Some(out) = one.out.as_mut() {
                    out.read_to_string(&mut text).map_err(internal)?;
                }
                let status = one.child.wait().map_err(internal)?;
                if !status.success() {
                    return Err(internal(format!("a worker process ended with {status}")));
                }
                results.push(serde_json::from_str(&text).map_err(|e| {
                    internal(format!("a worker process printed no result ({e}): {text}"))
                })?);
            }
            Ok(results)
        })
        .await
        .map_err(internal)?
    }
}

/// In a child: says it is ready and waits for the start.
pub fn wait_for_go() -> Result<(), AppError> {
    println!("{READY}");
    std::io::stdout().flush().map_err(internal)?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(internal)?;
    if line.trim() == GO {
        Ok(())
    } else {
        Err(internal("the measurement ended before this worker started"))
    }
}
