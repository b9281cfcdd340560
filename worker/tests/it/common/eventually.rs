//! The one way a test waits for something: [`eventually`] polls a check until it passes or a
//! deadline runs out. No test sleeps to let something happen.

use std::{
    fmt::Display,
    time::{Duration, Instant},
};

/// What a check of [`eventually`] returns: done (with what it found), or not yet.
pub trait Check {
    /// What the wait returns once the check passes.
    type Done;
    /// `Ok` once done; otherwise what was seen instead, for the message of a timeout.
    fn done(self) -> Result<Self::Done, String>;
}

/// `true` once it holds.
impl Check for bool {
    type Done = ();
    fn done(self) -> Result<(), String> {
        if self { Ok(()) } else { Err(String::new()) }
    }
}

/// `Some(found)` once found.
impl<T> Check for Option<T> {
    type Done = T;
    fn done(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

/// `Ok(found)` once found; `Err(what was seen instead)` until then, shown on a timeout.
impl<T, E: Display> Check for Result<T, E> {
    type Done = T;
    fn done(self) -> Result<T, String> {
        self.map_err(|seen| seen.to_string())
    }
}

/// The first pause between two checks; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Runs `check` until it passes (`true`, `Some`, `Ok`) and returns what it found; panics saying
/// `what` did not happen within `deadline` (and the last thing seen, for a `Result` check) if it
/// never does. A check still running at the deadline counts as not passed.
pub async fn eventually<C: Check>(
    deadline: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> C,
) -> C::Done {
    let end = Instant::now() + deadline;
    let mut pause = POLL_FIRST;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let seen = match tokio::time::timeout(left, check()).await {
            Ok(outcome) => match outcome.done() {
                Ok(done) => return done,
                Err(seen) => seen,
            },
            Err(_) => "(the check itself was still running)".to_owned(),
        };
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if seen.is_empty() {
                panic!("{what}: not within {deadline:?}");
            }
            panic!("{what}: not within {deadline:?}; last seen: {seen}");
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(POLL_MAX);
    }
}

#[tokio::test]
async fn eventually_returns_what_the_check_found_once_it_passes() {
    let mut calls = 0;
    let found = eventually(Duration::from_secs(5), "the third call", async || {
        calls += 1;
        (calls == 3).then_some(calls)
    })
    .await;
    assert_eq!(found, 3);
}

#[tokio::test]
#[should_panic(expected = "the impossible: not within 50ms; last seen: still 7")]
async fn eventually_says_what_did_not_happen_and_what_it_saw_instead() {
    eventually(Duration::from_millis(50), "the impossible", async || {
        Err::<(), _>(format!("still {}", 7))
    })
    .await;
}
