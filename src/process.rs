//! Running ffmpeg and ffprobe as children: always with a deadline, always
//! killed when the caller gives up, stderr kept (its last lines) for the error.

use std::{collections::VecDeque, process::ExitStatus, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader},
    process::Command,
};
use tokio_util::sync::CancellationToken;

/// How many stderr lines an error message keeps.
const STDERR_TAIL_LINES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program}: {source}; is it installed and on PATH?")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {limit:?} and was killed")]
    TimedOut { program: String, limit: Duration },
    #[error("{program} was stopped because its job was canceled or the worker is shutting down")]
    Canceled { program: String },
    #[error("reading {program}'s output failed: {source}")]
    Io {
        program: String,
        source: std::io::Error,
    },
}

/// A finished child.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The last lines of stderr, newest last.
    pub stderr_tail: String,
}

/// Runs `cmd` to completion, collecting stdout. Suitable for small outputs (ffprobe JSON).
pub async fn run(cmd: Command, limit: Duration) -> Result<Finished, ProcessError> {
    run_inner(cmd, limit, &CancellationToken::new(), |mut out| {
        Box::pin(async move {
            let mut buf = Vec::new();
            out.read_to_end(&mut buf).await.map(|_| buf)
        })
    })
    .await
}

/// Runs `cmd`, calling `on_line` for each stdout line as it arrives (ffmpeg
/// `-progress pipe:1`). Stops the child when `cancel` fires or `limit` passes.
pub async fn run_lines<F>(
    cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
    mut on_line: F,
) -> Result<Finished, ProcessError>
where
    F: FnMut(&str) + Send,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let run = run_inner(cmd, limit, cancel, move |out| {
        Box::pin(async move {
            let mut lines = BufReader::new(out).lines();
            while let Some(line) = lines.next_line().await? {
                let _ = tx.send(line);
            }
            Ok(Vec::new())
        })
    });
    tokio::pin!(run);
    loop {
        tokio::select! {
            Some(line) = rx.recv() => on_line(&line),
            result = &mut run => {
                while let Ok(line) = rx.try_recv() {
                    on_line(&line);
                }
                return result;
            }
        }
    }
}

type StdoutReader = tokio::process::ChildStdout;
type ReadFuture = std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<u8>>> + Send>>;

async fn run_inner(
    mut cmd: Command,
    limit: Duration,
    cancel: &CancellationToken,
    read_stdout: impl FnOnce(StdoutReader) -> ReadFuture,
) -> Result<Finished, ProcessError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let io_error = |source| ProcessError::Io {
        program: program.clone(),
        source,
    };

    let work = async {
        let (out, tail, status) =
            tokio::join!(read_stdout(stdout), tail_lines(stderr), child.wait());
        Ok::<_, std::io::Error>((out?, tail?, status?))
    };
    let outcome = tokio::select! {
        result = tokio::time::timeout(limit, work) => result,
        () = cancel.cancelled() => {
            return Err(ProcessError::Canceled { program });
        }
    };
    // On timeout or cancel the child is dropped here and kill_on_drop kills it.
    match outcome {
        Err(_) => Err(ProcessError::TimedOut { program, limit }),
        Ok(Err(e)) => Err(io_error(e)),
        Ok(Ok((stdout, stderr_tail, status))) => Ok(Finished {
            status,
            stdout,
            stderr_tail,
        }),
    }
}

async fn tail_lines(stream: impl AsyncRead + Unpin) -> std::io::Result<String> {
    let mut lines = BufReader::new(stream).lines();
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    while let Some(line) = lines.next_line().await? {
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    Ok(Vec::from(tail).join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_past_its_deadline_is_killed_and_reported() {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let started = std::time::Instant::now();
        let err = run(cmd, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(err, ProcessError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn stderr_keeps_only_the_last_lines() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "for i in $(seq 1 40); do echo line$i >&2; done; echo out",
        ]);
        let done = run(cmd, Duration::from_secs(5)).await.unwrap();
        assert!(done.status.success());
        assert_eq!(done.stdout, b"out\n");
        assert!(done.stderr_tail.ends_with("line40"));
        assert!(!done.stderr_tail.contains("line28\n"));
        assert_eq!(done.stderr_tail.lines().count(), STDERR_TAIL_LINES);
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let err = run(Command::new("no-such-program-xyz"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no-such-program-xyz"));
    }

    #[tokio::test]
    async fn lines_are_delivered_and_cancel_stops_the_child() {
        let cancel = CancellationToken::new();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo a; echo b; sleep 5"]);
        let mut seen = Vec::new();
        let stopper = cancel.clone();
        let err = run_lines(cmd, Duration::from_secs(10), &cancel, |l| {
            seen.push(l.to_owned());
            if l == "b" {
                stopper.cancel();
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ProcessError::Canceled { .. }));
        assert_eq!(seen, ["a", "b"]);
    }
}
