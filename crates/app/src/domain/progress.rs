//! Progress milestones (product.md §4.2): created 0, submitted 25, rendering 25→50 following
//! the provider's percentage, grid stored 50, then the upscales share the other half. A render
//! of separate outputs has no grid: its outputs share the second half evenly as they are
//! stored, as upscales do.

/// The milestones of one generation, given how many pictures follow the render's first half
/// (the upscales of a grid, or a render's separate outputs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Milestones {
    upscales: u8,
}

impl Milestones {
    pub const CREATED: f64 = 0.0;
    pub const SUBMITTED: f64 = 25.0;
    /// Rendering never reaches the "grid stored" milestone on the provider's word alone.
    const RENDERING_CAP: f64 = 49.75;

    pub fn new(upscales: u8) -> Self {
        Self { upscales }
    }

    /// Progress while the grid renders, from the provider's own 0–100 percentage.
    pub fn rendering(self, provider_percent: f64) -> f64 {
        let p = if provider_percent.is_finite() {
            provider_percent.clamp(0.0, 100.0)
        } else {
            0.0
        };
        (Self::SUBMITTED + p / 4.0).min(Self::RENDERING_CAP)
    }

    /// Progress once the grid is stored: 50, or 100 when no upscale follows.
    pub fn grid_stored(self) -> f64 {
        if self.upscales == 0 { 100.0 } else { 50.0 }
    }

    /// The milestones of a render of `count` separate outputs (at least one).
    pub fn separate(count: u8) -> Self {
        Self::new(count.max(1))
    }

    /// Progress once `stored` of a render's separate outputs are stored.
    pub fn outputs_stored(self, stored: u8) -> f64 {
        self.upscales_stored(stored)
    }

    /// Progress once `stored` of the upscales are stored.
    pub fn upscales_stored(self, stored: u8) -> f64 {
        if self.upscales == 0 {
            return 100.0;
        }
        let stored = stored.min(self.upscales);
        50.0 + 50.0 * f64::from(stored) / f64::from(self.upscales)
    }
}

#[cfg(test)]
mod tests {
    use super::Milestones;

    #[test]
    fn four_upscales_follow_the_contract() {
        let m = Milestones::new(4);
        assert!((m.rendering(0.0) - 25.0).abs() < f64::EPSILON);
        assert!((m.rendering(50.0) - 37.5).abs() < f64::EPSILON);
        assert!(m.rendering(100.0) < 50.0);
        assert!((m.grid_stored() - 50.0).abs() < f64::EPSILON);
        let steps: Vec<f64> = (1..=4).map(|k| m.upscales_stored(k)).collect();
        assert_eq!(steps, vec![62.5, 75.0, 87.5, 100.0]);
    }

    #[test]
    fn fewer_upscales_split_the_second_half_evenly() {
        let m = Milestones::new(2);
        assert_eq!(m.upscales_stored(1), 75.0);
        assert_eq!(m.upscales_stored(2), 100.0);
        assert_eq!(Milestones::new(0).grid_stored(), 100.0);
    }

    #[test]
    fn separate_outputs_share_the_second_half_evenly() {
        let four = Milestones::separate(4);
        assert!((four.rendering(100.0) - 49.75).abs() < f64::EPSILON);
        let steps: Vec<f64> = (1..=4).map(|k| four.outputs_stored(k)).collect();
        assert_eq!(steps, vec![62.5, 75.0, 87.5, 100.0]);
        let three = Milestones::separate(3);
        assert!((three.outputs_stored(1) - 50.0 - 50.0 / 3.0).abs() < 1e-9);
        assert_eq!(three.outputs_stored(3), 100.0);
        assert_eq!(Milestones::separate(1).outputs_stored(1), 100.0);
        // None asked still means one output, never a render that ends at 50.
        assert_eq!(Milestones::separate(0).outputs_stored(1), 100.0);
    }

    #[test]
    fn odd_provider_numbers_are_tamed() {
        let m = Milestones::new(4);
        assert_eq!(m.rendering(f64::NAN), 25.0);
        assert_eq!(m.rendering(-3.0), 25.0);
        assert!(m.rendering(1e9) < 50.0);
    }
}
