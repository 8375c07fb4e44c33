//! The quadrants of the grids the sandbox is drawing for running jobs, kept for the upscales
//! that follow: an upscale is exactly a quadrant, so it need not be drawn twice. Entries leave
//! when taken, when their job releases the provider, or oldest first beyond a byte budget.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::domain::GenerationId;
use crate::pipeline::Pixels;

/// At most this many bytes of pixels are kept (a 2048² grid's quadrants are 12 MB).
const MAX_BYTES: usize = 32 << 20;

struct Entry {
    generation: GenerationId,
    seed: u32,
    side: u32,
    quadrants: [Option<Pixels>; 4],
}

impl Entry {
    fn bytes(&self) -> usize {
        self.quadrants.iter().flatten().map(|p| p.data.len()).sum()
    }
}

/// The kept grids, oldest first.
struct Kept {
    entries: VecDeque<Entry>,
    max_bytes: usize,
}

static KEPT: Mutex<Kept> = Mutex::new(Kept::new(MAX_BYTES));

/// Keeps the quadrants (1–4 in order) of a grid drawn for `generation`.
pub fn keep(generation: GenerationId, seed: u32, quadrants: Vec<Pixels>) {
    if let Ok(mut kept) = KEPT.lock() {
        kept.keep(generation, seed, quadrants);
    }
}

/// Quadrant `index` (1–4) at `side` of the grid drawn for `generation` with `seed`, if kept.
pub fn take(generation: GenerationId, seed: u32, side: u32, index: u8) -> Option<Pixels> {
    KEPT.lock().ok()?.take(generation, seed, side, index)
}

/// Forgets what was kept for `generation`.
pub fn forget(generation: GenerationId) {
    if let Ok(mut kept) = KEPT.lock() {
        kept.entries.retain(|e| e.generation != generation);
    }
}

impl Kept {
    const fn new(max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            max_bytes,
        }
    }

    fn keep(&mut self, generation: GenerationId, seed: u32, quadrants: Vec<Pixels>) {
        let Ok(quadrants) = <[Pixels; 4]>::try_from(quadrants) else {
            return;
        };
        let side = quadrants[0].width;
        self.entries.retain(|e| e.generation != generation);
        self.entries.push_back(Entry {
            generation,
            seed,
            side,
            quadrants: quadrants.map(Some),
        });
        while self.entries.iter().map(Entry::bytes).sum::<usize>() > self.max_bytes
            && self.entries.len() > 1
        {
            self.entries.pop_front();
        }
    }

    fn take(
        &mut self,
        generation: GenerationId,
        seed: u32,
        side: u32,
        index: u8,
    ) -> Option<Pixels> {
        let at = self
            .entries
            .iter()
            .position(|e| e.generation == generation && e.seed == seed && e.side == side)?;
        let slot = usize::from(index).checked_sub(1)?;
        let pixels = self.entries[at].quadrants.get_mut(slot)?.take();
        if self.entries[at].quadrants.iter().all(Option::is_none) {
            self.entries.remove(at);
        }
        pixels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::sandbox::draw;

    #[test]
    fn kept_quadrants_are_the_drawn_ones_and_are_taken_once() {
        let g = GenerationId::new();
        let (_, quadrants) = draw::grid_and_quadrants("a kept fox", 5, 64);
        keep(g, 5, quadrants);
        assert!(take(g, 6, 32, 1).is_none(), "another seed");
        assert!(take(g, 5, 16, 1).is_none(), "another size");
        assert!(
            take(GenerationId::new(), 5, 32, 1).is_none(),
            "another generation"
        );
        for i in 1..=4 {
            let kept = take(g, 5, 32, i).expect("kept");
            assert_eq!(kept.data, draw::quadrant("a kept fox", 5, 32, i).data);
            assert!(take(g, 5, 32, i).is_none(), "taken twice");
        }
        assert!(take(g, 5, 32, 0).is_none() && take(g, 5, 32, 5).is_none());
    }

    #[test]
    fn forgotten_and_evicted_entries_are_drawn_again() {
        let g = GenerationId::new();
        keep(g, 1, draw::grid_and_quadrants("forgotten", 1, 32).1);
        forget(g);
        assert!(take(g, 1, 16, 2).is_none());

        // Entries beyond the byte budget leave oldest first.
        let big = |seed| {
            (0..4)
                .map(|_| Pixels::rgb(1024, 1024, vec![seed; 1024 * 1024 * 3]))
                .collect()
        };
        let (old, new) = (GenerationId::new(), GenerationId::new());
        keep(old, 1, big(1));
        for _ in 0..3 {
            keep(GenerationId::new(), 2, big(2));
        }
        keep(new, 3, big(3));
        assert!(take(old, 1, 1024, 1).is_none(), "the oldest was evicted");
        assert_eq!(take(new, 3, 1024, 4).map(|p| p.data[0]), Some(3));
    }
}
