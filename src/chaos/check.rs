//! A linearizability checker for one znode used as a versioned register, in the style of
//! Wing & Gong's search with Lowe's memoization (the algorithm Porcupine implements).
//!
//! Operations: `write(v)` (setData with version -1, answers the new version), `cas(expected
//! version, v)` (setData with a version: the new version, or BadVersion), `read` (sync then
//! getData: value and version). An operation whose outcome the client never learned (the
//! connection broke, a timeout) may have taken effect at any point after its call, or never:
//! it has no return event and accepts any result.
//!
//! The search walks the history in time order, trying each operation that could take effect
//! next (it was called before the earliest pending return) against the model, backtracking on
//! a mismatch. Memoizing (set of operations linearized, model state) keeps it polynomial in
//! practice for the low concurrency of a chaos run.

use std::collections::HashSet;

/// The register: (value, version). A fresh znode is (0, 0).
pub type RegState = (u64, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Write(u64),
    Cas { expected: i32, value: u64 },
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// setData succeeded with this new version.
    Version(i32),
    /// setData with a version failed: BadVersion.
    BadVersion,
    /// getData: value and version.
    Value(u64, i32),
    /// The client never learned the outcome.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub input: Input,
    pub output: Output,
    /// Monotonic times (ns since the run began). `ret` is None for Unknown outcomes.
    pub call: u64,
    pub ret: Option<u64>,
}

/// The model's step: the next state, if `output` is possible for `input` in `state`.
fn step(state: RegState, input: Input, output: Output) -> Option<RegState> {
    let (value, version) = state;
    match (input, output) {
        (Input::Write(v), Output::Version(n)) if n == version + 1 => Some((v, n)),
        (Input::Write(v), Output::Unknown) => Some((v, version + 1)),
        (Input::Cas { expected, value: v }, Output::Version(n))
            if expected == version && n == version + 1 =>
        {
            Some((v, n))
        }
        (Input::Cas { expected, .. }, Output::BadVersion) if expected != version => Some(state),
        (Input::Cas { expected, value: v }, Output::Unknown) => {
            if expected == version {
                Some((v, version + 1))
            } else {
                Some(state)
            }
        }
        (Input::Read, Output::Value(v, n)) if v == value && n == version => Some(state),
        (Input::Read, Output::Unknown) => Some(state),
        _ => None,
    }
}

/// Whether the history is linearizable from `init`. `None` = the search gave up after
/// `budget` steps (undecided).
pub fn linearizable(ops: &[Op], init: RegState, budget: u64) -> Option<bool> {
    let n = ops.len();
    if n == 0 {
        return Some(true);
    }
    // Events: (time, is_return, op). Calls before returns at equal times (overlap is
    // permissive); unknown outcomes return after everything.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, false, i));
        events.push((o.ret.unwrap_or(u64::MAX), true, i));
    }
    events.sort_by_key(|e| (e.0, e.1, e.2));
    // Doubly linked list over event positions.
    let len = events.len();
    let mut next: Vec<usize> = (1..=len).collect(); // len = end
    let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect(); // MAX = head
    let mut head = 0usize;
    let mut ret_pos = vec![0usize; n];
    for (p, e) in events.iter().enumerate() {
        if e.1 {
            ret_pos[e.2] = p;
        }
    }
    let unlink = |p: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>, head: &mut usize| {
        let (a, b) = (prev[p], next[p]);
        if a == usize::MAX {
            *head = b;
        } else {
            next[a] = b;
        }
        if b < len {
            prev[b] = a;
        }
    };
    let relink = |p: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>, head: &mut usize| {
        let (a, b) = (prev[p], next[p]);
        if a == usize::MAX {
            *head = p;
        } else {
            next[a] = p;
        }
        if b < len {
            prev[b] = p;
        }
    };
    // The set of linearized operations, as a Zobrist hash: the XOR of a 128-bit key per
    // operation, updated in O(1) (a full bitset per cache entry would not fit long runs).
    let key = |i: usize| -> u128 {
        let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mix = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        (u128::from(mix()) << 64) | u128::from(mix())
    };
    let keys: Vec<u128> = (0..n).map(key).collect();
    let mut linearized: u128 = 0;
    let mut cache: HashSet<(u128, RegState)> = HashSet::new();
    // Stack of (call position, op, state before).
    let mut stack: Vec<(usize, usize, RegState)> = Vec::new();
    let mut state = init;
    let mut entry = head;
    let mut steps = 0u64;
    while head < len {
        steps += 1;
        if steps > budget {
            return None;
        }
        if entry >= len {
            // Nothing more to try here: backtrack.
            let Some((p, op, before)) = stack.pop() else {
                return Some(false);
            };
            state = before;
            linearized ^= keys[op];
            // Undo in reverse order of removal (return, then call).
            relink(p, &mut next, &mut prev, &mut head);
            relink(ret_pos[op], &mut next, &mut prev, &mut head);
            entry = next[p];
            continue;
        }
        let (_, is_ret, op) = events[entry];
        if is_ret {
            // An operation returned before anything pending could take effect: backtrack.
            let Some((p, op, before)) = stack.pop() else {
                return Some(false);
            };
            state = before;
            linearized ^= keys[op];
            // Undo in reverse order of removal (return, then call).
            relink(p, &mut next, &mut prev, &mut head);
            relink(ret_pos[op], &mut next, &mut prev, &mut head);
            entry = next[p];
            continue;
        }
        let o = &ops[op];
        if let Some(after) = step(state, o.input, o.output) {
            linearized ^= keys[op];
            if cache.insert((linearized, after)) {
                stack.push((entry, op, state));
                state = after;
                unlink(ret_pos[op], &mut next, &mut prev, &mut head);
                unlink(entry, &mut next, &mut prev, &mut head);
                entry = head;
                continue;
            }
            linearized ^= keys[op];
        }
        entry = next[entry];
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, input: Input, output: Output, call: u64, ret: Option<u64>) -> Op {
        Op {
            client,
            input,
            output,
            call,
            ret,
        }
    }

    #[test]
    fn sequential_writes_and_reads_are_linearizable() {
        let h = [
            op(0, Input::Write(5), Output::Version(1), 0, Some(1)),
            op(1, Input::Read, Output::Value(5, 1), 2, Some(3)),
            op(
                0,
                Input::Cas {
                    expected: 1,
                    value: 7,
                },
                Output::Version(2),
                4,
                Some(5),
            ),
            op(
                1,
                Input::Cas {
                    expected: 1,
                    value: 9,
                },
                Output::BadVersion,
                6,
                Some(7),
            ),
            op(1, Input::Read, Output::Value(7, 2), 8, Some(9)),
        ];
        assert_eq!(linearizable(&h, (0, 0), 1_000_000), Some(true));
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        let h = [
            op(0, Input::Write(5), Output::Version(1), 0, Some(1)),
            op(1, Input::Read, Output::Value(0, 0), 2, Some(3)),
        ];
        assert_eq!(linearizable(&h, (0, 0), 1_000_000), Some(false));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let h = [
            op(0, Input::Write(5), Output::Version(1), 0, Some(1)),
            op(0, Input::Write(6), Output::Version(2), 2, Some(3)),
            op(1, Input::Read, Output::Value(5, 1), 4, Some(5)),
        ];
        assert_eq!(linearizable(&h, (0, 0), 1_000_000), Some(false));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping writes; a read after both sees the one that went second.
        let h = [
            op(0, Input::Write(1), Output::Version(2), 0, Some(10)),
            op(1, Input::Write(2), Output::Version(1), 1, Some(9)),
            op(2, Input::Read, Output::Value(1, 2), 11, Some(12)),
        ];
        assert_eq!(linearizable(&h, (0, 0), 1_000_000), Some(true));
        // A version that skips one (a write applied twice) is not.
        let h = [
            op(0, Input::Write(1), Output::Version(1), 0, Some(1)),
            op(1, Input::Read, Output::Value(1, 2), 2, Some(3)),
        ];
        assert_eq!(linearizable(&h, (0, 0), 1_000_000), Some(false));
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_happened() {
        let took_effect = [
            op(0, Input::Write(5), Output::Unknown, 0, None),
            op(1, Input::Read, Output::Value(5, 1), 2, Some(3)),
        ];
        assert_eq!(linearizable(&took_effect, (0, 0), 1_000_000), Some(true));
        let did_not = [
            op(0, Input::Write(5), Output::Unknown, 0, None),
            op(1, Input::Read, Output::Value(0, 0), 2, Some(3)),
            op(1, Input::Write(6), Output::Version(1), 4, Some(5)),
        ];
        assert_eq!(linearizable(&did_not, (0, 0), 1_000_000), Some(true));
        // But not before its call.
        let before_call = [
            op(1, Input::Read, Output::Value(5, 1), 0, Some(1)),
            op(0, Input::Write(5), Output::Unknown, 2, None),
        ];
        assert_eq!(linearizable(&before_call, (0, 0), 1_000_000), Some(false));
    }
}
