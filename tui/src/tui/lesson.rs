//! Lessons: an image that announces phases on its console (`@phase <n> <title>`) and the
//! narration the TUI shows for each phase. The text lives here, host-side, so it can be edited
//! without rebuilding the image; the image only says which phase it is in.

/// One lesson.
#[derive(Debug)]
pub struct Lesson {
    /// What `--lesson` takes.
    pub name: &'static str,
    /// The bare-metal image (`workloads::images`).
    pub image: &'static str,
    /// The machine preset it is written for (`--machine` overrides).
    pub machine: &'static str,
    /// Shown before the first phase.
    pub intro: Narration,
    /// Phase `n` (as announced) is `phases[n - 1]`.
    pub phases: &'static [Narration],
}

#[derive(Debug)]
pub struct Narration {
    pub title: &'static str,
    /// What to look at, one short line.
    pub look: &'static str,
    /// Why the numbers move.
    pub text: &'static str,
}

impl Lesson {
    /// The narration for announced phase `n` (0: the introduction).
    pub fn narration(&self, n: usize) -> Option<&Narration> {
        if n == 0 {
            Some(&self.intro)
        } else {
            self.phases.get(n - 1)
        }
    }
}

/// Parses a console line `@phase <n> <title>`.
pub fn parse_phase(line: &str) -> Option<(usize, &str)> {
    let rest = line.strip_prefix("@phase ")?;
    let (n, title) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((n.parse().ok()?, title.trim()))
}

pub fn find(name: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    LESSONS.iter().map(|l| l.name)
}

pub static LESSONS: &[Lesson] = &[NUMA];

const NUMA: Lesson = Lesson {
    name: "numa",
    image: "numa-lesson",
    machine: "2s",
    intro: Narration {
        title: "What you are looking at",
        look: "Press space to start; ? lists the keys.",
        text: "This is a two-socket machine. Each socket (top boxes) has four cores and its own \
               memory, a NUMA node, behind its own memory controller. The sockets are joined by \
               a link. A core reaches its own node's memory directly (local) and the other \
               node's memory through the link (remote).\n\
               Each node box graphs the bytes its controller reads and writes per epoch (10 µs \
               of simulated time): green is local traffic, yellow remote, magenta DMA. The top \
               of a graph is the controller's peak bandwidth. The queue is how many requests \
               wait at the controller.\n\
               The program in the machine streams through memory in five phases; each phase \
               explains itself here when it starts.",
    },
    phases: &[
        Narration {
            title: "Local access",
            look: "Look at node 0: green reads. Node 1 and the link stay quiet.",
            text: "Core 0 reads through a 32 MiB buffer on node 0, its own node, one cache line \
                   after the other. Every phase reads memory no earlier phase touched, so the \
                   reads miss the caches and go to memory.\n\
                   How much one core gets is set by how many cache misses it can keep in flight \
                   and how long each takes: bandwidth = misses in flight × 64 bytes ÷ latency. \
                   The event log shows what the program measured at the end of the phase.\n\
                   The other cores wait at a barrier: busy, but only touching their own cache.",
        },
        Narration {
            title: "Remote access",
            look: "Look at node 1 turning yellow, the link filling up, and the GB/s in the log.",
            text: "Same core, same work, but the buffer now lives on node 1. Every miss crosses \
                   the link: the request goes over, the data comes back. Node 1's reads are \
                   yellow (asked for by a core of another socket) and the link carries the data.\n\
                   Each miss now takes longer (the trip across the link, both ways), and the \
                   link carries less than a memory controller can. With the same misses in \
                   flight, the core moves fewer bytes per second: compare this phase's GB/s \
                   with phase 1's in the event log. That is the NUMA penalty: remote memory is \
                   slower because it is farther away, behind a narrower path.",
        },
        Narration {
            title: "One socket saturates its controller",
            look: "Look at node 0's graph hitting its ceiling, and its queue.",
            text: "All four cores of socket 0 stream from node 0 at once, so demand adds up. \
                   The controller serves requests at its peak rate at most (the top of the \
                   graph); requests that arrive faster wait in its queue, and the queue grows.\n\
                   At the ceiling, more cores stop bringing more bandwidth: each access just \
                   waits longer. That is saturation, and why this phase's GB/s is not four \
                   times phase 1's.",
        },
        Narration {
            title: "Every core on one node: a hot spot",
            look: "Look at node 0 (green and yellow stacked at the ceiling) while node 1 idles.",
            text: "Every core of both sockets now reads node 0. Socket 1's cores add remote \
                   (yellow) traffic to socket 0's local (green) traffic, all at one controller \
                   that was already at its peak, while node 1's controller has nothing to do.\n\
                   Twice the cores, no more bandwidth: they share the same ceiling, and the \
                   queue is long. This is what happens when all of a program's memory ends up \
                   on one node: one controller is the bottleneck for everyone, and half the \
                   machine's memory bandwidth goes unused.",
        },
        Narration {
            title: "Interleaved placement",
            look: "Look at both nodes working, the links, and the total GB/s in the log.",
            text: "Same eight cores, same reading, but the memory now alternates between node 0 \
                   and node 1 every 64 KiB. Both controllers serve, each with a mix of local \
                   and remote reads, so together they deliver more than the hot spot did.\n\
                   The price: half of every core's accesses are remote, so they take longer \
                   and fill the links, which caps the gain. Interleaving trades latency for \
                   bandwidth: good for data every core shares, worse than local placement for \
                   one core's private data.",
        },
        Narration {
            title: "Summary",
            look: "The event log lists each phase's GB/s, measured by the program itself.",
            text: "The program timed each phase with its own clock (rdtsc) and printed what it \
                   measured.\n\
                   • Local beats remote for one core: shorter trips, no link in the way.\n\
                   • A socket's cores together saturate their node's controller: the queue \
                   grows, the bandwidth stops growing.\n\
                   • A single hot node is a ceiling for the whole machine.\n\
                   • Interleaving puts every controller to work, at the cost of remote \
                   accesses.\n\
                   Press q to quit. Try another machine: pvmlab tui --lesson numa --machine 4s",
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_lines_parse() {
        assert_eq!(
            parse_phase("@phase 2 Remote access"),
            Some((2, "Remote access"))
        );
        assert_eq!(parse_phase("@phase 7"), Some((7, "")));
        assert_eq!(parse_phase("@phase x y"), None);
        assert_eq!(parse_phase("phase 1 x"), None);
    }

    #[test]
    fn the_numa_lesson_narrates_every_phase_of_its_image() {
        let numa = find("numa").unwrap();
        assert!(workloads::images::get(numa.image).is_some());
        assert_eq!(numa.phases.len(), 6);
        assert!(numa.narration(0).is_some() && numa.narration(6).is_some());
        assert!(numa.narration(7).is_none());
    }
}
