//! The scheduler of a run, without processes: which step may start now (every step it needs or
//! waits on, directly or through any chain, has ended; skipped steps are transparent), which
//! steps can no longer run (blocked by a failed, interrupted, blocked or not-up-to-date need),
//! when the run stops starting steps (a failure without `--keep-going`, an interrupt, a signal
//! or a lost lock), and which steps are stuck waiting on each other (a bug: exit 70).

use super::outcome::Outcome;

/// Where a step stands in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    /// Will run (or be decided when ready), not started.
    Waiting,
    Running,
    /// Completed in this run, or up to date from before.
    Satisfied,
    /// Not up to date and will not run (pending, excluded-and-unsatisfied).
    Unsatisfied,
    Failed,
    Blocked,
    Interrupted,
}

#[derive(Debug, Clone)]
pub(super) struct Schedule {
    pub nodes: Vec<Node>,
    /// The steps each one needs, directly.
    direct: Vec<Vec<usize>>,
    /// The steps each one needs, directly or through any chain (nearest first).
    pub ancestors: Vec<Vec<usize>>,
    /// What each step waits on before it may start: its ancestors, and for a pending step the
    /// steps whose outputs decide it.
    waits: Vec<Vec<usize>>,
    running: usize,
    jobs: usize,
    keep_going: bool,
    /// No step starts any more (the running ones end).
    pub stop_starting: bool,
}

impl Schedule {
    pub fn new(
        nodes: Vec<Node>,
        direct: Vec<Vec<usize>>,
        ancestors: Vec<Vec<usize>>,
        waits: Vec<Vec<usize>>,
        jobs: usize,
        keep_going: bool,
    ) -> Schedule {
        Schedule {
            nodes,
            direct,
            ancestors,
            waits,
            running: 0,
            jobs: jobs.max(1),
            keep_going,
            stop_starting: false,
        }
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// Why waiting step `i` can no longer run: the need `j` that stops it and what `j` did.
    /// A direct need that is not up to date and does not run blocks; an indirect one does not
    /// (a need in between is up to date from before).
    pub fn blocker(&self, i: usize) -> Option<(usize, &'static str)> {
        let bad = |j: usize, direct: bool| match self.nodes[j] {
            Node::Unsatisfied if direct => Some("is not up to date and does not run"),
            Node::Failed => Some("failed"),
            Node::Interrupted => Some("was interrupted"),
            Node::Blocked => Some("is blocked"),
            _ => None,
        };
        self.direct[i]
            .iter()
            .find_map(|&j| bad(j, true).map(|w| (j, w)))
            .or_else(|| {
                self.ancestors[i]
                    .iter()
                    .find_map(|&j| bad(j, false).map(|w| (j, w)))
            })
    }

    /// Blocks every waiting step that can no longer run (until nothing changes); returns each
    /// one with the need that blocks it and what that need did, in the order they were blocked.
    pub fn block(&mut self) -> Vec<(usize, usize, &'static str)> {
        let mut blocked = Vec::new();
        let mut progressed = true;
        while progressed {
            progressed = false;
            for i in 0..self.nodes.len() {
                if self.nodes[i] != Node::Waiting {
                    continue;
                }
                if let Some((j, what)) = self.blocker(i) {
                    self.nodes[i] = Node::Blocked;
                    blocked.push((i, j, what));
                    progressed = true;
                }
            }
        }
        blocked
    }

    /// May step `i` start now: it waits, the run still starts steps, a job is free, and
    /// everything it waits on has ended.
    pub fn ready(&self, i: usize) -> bool {
        !self.stop_starting
            && self.running < self.jobs
            && self.nodes[i] == Node::Waiting
            && self.waits[i]
                .iter()
                .all(|&j| !matches!(self.nodes[j], Node::Waiting | Node::Running))
    }

    /// The first step (in file order) that may start now.
    #[cfg(test)]
    pub fn next_ready(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.ready(i))
    }

    /// Step `i` starts.
    pub fn start(&mut self, i: usize) {
        self.nodes[i] = Node::Running;
        self.running += 1;
    }

    /// Step `i` was decided without running (skipped, pending in a dry run, or failed before
    /// it started).
    pub fn decided(&mut self, i: usize, node: Node) {
        self.nodes[i] = node;
        if node == Node::Failed && !self.keep_going {
            self.stop_starting = true;
        }
    }

    /// Running step `i` ended with `outcome`.
    pub fn finished(&mut self, i: usize, outcome: Outcome) {
        self.running -= 1;
        self.nodes[i] = match outcome {
            Outcome::Ran => Node::Satisfied,
            Outcome::Interrupted => Node::Interrupted,
            _ => Node::Failed,
        };
        match self.nodes[i] {
            Node::Failed if !self.keep_going => self.stop_starting = true,
            Node::Interrupted => self.stop_starting = true,
            _ => {}
        }
    }

    /// Steps still waiting, each with the waiting steps it waits on: after the run ended with
    /// nothing running and no reason to stop, these wait on each other (a bug).
    pub fn stuck(&self) -> Vec<(usize, Vec<usize>)> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i] == Node::Waiting)
            .map(|i| {
                let on = self.waits[i]
                    .iter()
                    .copied()
                    .filter(|&j| self.nodes[j] == Node::Waiting)
                    .collect();
                (i, on)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Node::{self, *};
    use super::*;

    /// A schedule over steps with these direct needs (indexes), all ancestors walked, every
    /// step waiting only on its ancestors.
    fn schedule(nodes: &[Node], needs: &[&[usize]], jobs: usize, keep_going: bool) -> Schedule {
        let direct: Vec<Vec<usize>> = needs.iter().map(|n| n.to_vec()).collect();
        let ancestors: Vec<Vec<usize>> = (0..needs.len())
            .map(|i| {
                let mut out: Vec<usize> = Vec::new();
                let mut todo = direct[i].clone();
                while let Some(j) = todo.pop() {
                    if !out.contains(&j) {
                        out.push(j);
                        todo.extend(direct[j].iter().copied());
                    }
                }
                out
            })
            .collect();
        Schedule::new(
            nodes.to_vec(),
            direct,
            ancestors.clone(),
            ancestors,
            jobs,
            keep_going,
        )
    }

    enum Ev {
        /// Start whatever is ready (block first), expect these to start, in order.
        Start(&'static [usize]),
        /// A running step ends.
        End(usize, Outcome),
        /// Expect these blocked by (step, need, what), in order, at the next `block`.
        Blocks(&'static [(usize, usize, &'static str)]),
    }

    /// Runs the events like the executor's loop does and checks each expectation.
    fn play(name: &str, mut s: Schedule, events: &[Ev]) -> Schedule {
        for (k, ev) in events.iter().enumerate() {
            match ev {
                Ev::Start(want) => {
                    s.block();
                    let mut started = Vec::new();
                    while let Some(i) = s.next_ready() {
                        s.start(i);
                        started.push(i);
                    }
                    assert_eq!(&started, want, "{name}: event {k}");
                }
                Ev::End(i, o) => s.finished(*i, *o),
                Ev::Blocks(want) => assert_eq!(&s.block(), want, "{name}: event {k}"),
            }
        }
        s
    }

    #[test]
    fn the_scheduler_orders_blocks_and_stops_as_the_run_promises() {
        use Ev::*;
        use Outcome::{Failed as F, Interrupted as I, Ran as R};
        // a → b → c: one at a time along the chain, all at once when independent.
        play(
            "chain",
            schedule(&[Waiting; 3], &[&[], &[0], &[1]], 4, false),
            &[Start(&[0]), End(0, R), Start(&[1]), End(1, R), Start(&[2])],
        );
        play(
            "independent, jobs 2",
            schedule(&[Waiting; 3], &[&[], &[], &[]], 2, false),
            &[Start(&[0, 1]), End(1, R), Start(&[2])],
        );
        // A skipped step is transparent: c (needs skipped b, which needs a) waits for a.
        play(
            "through a skipped step",
            schedule(&[Waiting, Satisfied, Waiting], &[&[], &[0], &[1]], 4, false),
            &[Start(&[0]), End(0, R), Start(&[2])],
        );
        // A failure blocks what needs it, directly or not, named by the nearest cause; with
        // --keep-going an independent step still starts, without it nothing more starts.
        let s = play(
            "failure, keep going",
            schedule(&[Waiting; 4], &[&[], &[0], &[1], &[]], 1, true),
            &[
                Start(&[0]),
                End(0, F),
                Blocks(&[(1, 0, "failed"), (2, 1, "is blocked")]),
                Start(&[3]),
            ],
        );
        assert_eq!(s.nodes, [Failed, Blocked, Blocked, Running]);
        let s = play(
            "failure, stop",
            schedule(&[Waiting; 4], &[&[], &[0], &[1], &[]], 1, false),
            &[Start(&[0]), End(0, F), Start(&[])],
        );
        assert!(s.stop_starting);
        assert_eq!(s.nodes[3], Waiting, "never started, never blocked");
        // An interrupt stops starting even with --keep-going.
        let s = play(
            "interrupt",
            schedule(&[Waiting; 2], &[&[], &[]], 1, true),
            &[Start(&[0]), End(0, I), Start(&[])],
        );
        assert!(s.stop_starting);
        // A direct need that will not be up to date blocks; an indirect one behind an
        // up-to-date step does not.
        play(
            "unsatisfied need",
            schedule(
                &[Unsatisfied, Waiting, Satisfied, Waiting],
                &[&[], &[0], &[0], &[2]],
                4,
                false,
            ),
            &[
                Blocks(&[(1, 0, "is not up to date and does not run")]),
                Start(&[3]),
            ],
        );
        // A step that failed before it started stops the run like one that ran and failed.
        let mut s = schedule(&[Waiting; 2], &[&[], &[]], 4, false);
        s.decided(0, Failed);
        assert_eq!(s.next_ready(), None);
    }

    #[test]
    fn steps_that_wait_on_each_other_are_stuck_not_blocked() {
        let direct = vec![vec![], vec![]];
        // a waits on b's outputs and b on a's: neither can start, nothing failed.
        let waits = vec![vec![1], vec![0]];
        let mut s = Schedule::new(
            vec![Waiting, Waiting],
            direct,
            vec![vec![], vec![]],
            waits,
            4,
            false,
        );
        assert_eq!(s.block(), []);
        assert_eq!(s.next_ready(), None);
        assert_eq!(s.stuck(), [(0, vec![1]), (1, vec![0])]);
    }
}
