//! Where MMO bots spawn and walk: a rectangle of the world (all of it, or a
//! small square in its centre), a seeded random number generator (the same
//! bots walk the same way in every run), and the random walk itself.

use serde::{Deserialize, Serialize};

use crate::units::f64_from;

/// A point in world units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// East.
    pub x: f64,
    /// North.
    pub y: f64,
}

/// A rectangle of the world, edges included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// The south-west corner.
    pub min: Point,
    /// The north-east corner.
    pub max: Point,
}

impl Region {
    /// The whole world, `[0, width] × [0, height]`.
    pub fn whole(width: f64, height: f64) -> Region {
        Region {
            min: Point { x: 0.0, y: 0.0 },
            max: Point {
                x: width.max(0.0),
                y: height.max(0.0),
            },
        }
    }

    /// A square of side `side` centred in the world, cut to its bounds.
    pub fn centred(width: f64, height: f64, side: f64) -> Region {
        let world = Region::whole(width, height);
        let half = side.max(0.0) / 2.0;
        let (cx, cy) = (world.max.x / 2.0, world.max.y / 2.0);
        Region {
            min: world.clamp(Point {
                x: cx - half,
                y: cy - half,
            }),
            max: world.clamp(Point {
                x: cx + half,
                y: cy + half,
            }),
        }
    }

    /// Its east-west and north-south extent.
    pub fn size(&self) -> (f64, f64) {
        (self.max.x - self.min.x, self.max.y - self.min.y)
    }

    /// The point of the region nearest to `point`.
    pub fn clamp(&self, point: Point) -> Point {
        Point {
            x: point.x.clamp(self.min.x, self.max.x),
            y: point.y.clamp(self.min.y, self.max.y),
        }
    }

    /// A point drawn uniformly from it.
    pub fn random_point(&self, rng: &mut Rng) -> Point {
        let (width, height) = self.size();
        Point {
            x: self.min.x + rng.unit() * width,
            y: self.min.y + rng.unit() * height,
        }
    }

    /// `point` mirrored back in at the edges it crossed, then clamped (for a
    /// region narrower than the overshoot). Neither moves it away from a
    /// point inside the region, coordinate by coordinate.
    fn fold(&self, point: Point) -> Point {
        let fold = |value: f64, low: f64, high: f64| {
            let mirrored = if value < low {
                2.0 * low - value
            } else if value > high {
                2.0 * high - value
            } else {
                value
            };
            mirrored.clamp(low, high)
        };
        Point {
            x: fold(point.x, self.min.x, self.max.x),
            y: fold(point.y, self.min.y, self.max.y),
        }
    }
}

/// A small, fast, seeded random number generator (SplitMix64): not for
/// secrets, only for spreading bots out reproducibly.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number drawn uniformly from `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits: exactly representable, so the result is below 1.
        f64_from(self.next_u64() >> 11) / f64_from(1 << 53)
    }
}

/// The next target of a random walk from `from`: `step` away in a random
/// direction, folded back into `region` at its edges, and the heading
/// (radians counter-clockwise from east) from `from` to it. When `from` is in
/// the region, the target is too, and at most `step` away.
pub fn next_target(region: &Region, from: Point, step: f64, rng: &mut Rng) -> (Point, f64) {
    let angle = rng.unit() * std::f64::consts::TAU;
    let wanted = Point {
        x: from.x + step * angle.cos(),
        y: from.y + step * angle.sin(),
    };
    let target = region.fold(wanted);
    let heading = if target == from {
        angle
    } else {
        (target.y - from.y).atan2(target.x - from.x)
    };
    (target, heading)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: Point, b: Point) -> f64 {
        (a.x - b.x).hypot(a.y - b.y)
    }

    impl Region {
        fn contains(&self, point: Point) -> bool {
            (self.min.x..=self.max.x).contains(&point.x) && (self.min.y..=self.max.y).contains(&point.y)
        }
    }

    #[test]
    fn regions_whole_and_centred() {
        let whole = Region::whole(2000.0, 1000.0);
        assert_eq!(whole.size(), (2000.0, 1000.0));
        let square = Region::centred(2000.0, 1000.0, 100.0);
        assert_eq!(square.min, Point { x: 950.0, y: 450.0 });
        assert_eq!(square.max, Point { x: 1050.0, y: 550.0 });
        // Wider than the world: cut to it.
        let cut = Region::centred(100.0, 50.0, 400.0);
        assert_eq!(cut, Region::whole(100.0, 50.0));
        assert!(square.contains(Point { x: 1000.0, y: 500.0 }));
        assert!(!square.contains(Point { x: 1000.0, y: 551.0 }));
    }

    #[test]
    fn the_generator_is_reproducible_and_uniform_enough() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
        let draws: Vec<f64> = (0..10_000).map(|_| a.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }

    #[test]
    fn random_points_fall_in_the_region() {
        let region = Region::centred(2000.0, 2000.0, 100.0);
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| region.contains(region.random_point(&mut rng))));
    }

    #[test]
    fn the_walk_stays_in_the_region_and_within_a_step() {
        let mut rng = Rng::new(42);
        // A tiny region (narrower than a step) and an ordinary one.
        for (region, step) in [
            (Region::centred(2000.0, 2000.0, 1.5), 2.0),
            (Region::centred(2000.0, 2000.0, 100.0), 2.0),
            (Region::whole(50.0, 30.0), 7.5),
        ] {
            let mut at = region.random_point(&mut rng);
            let mut corners = 0;
            for _ in 0..20_000 {
                let (next, heading) = next_target(&region, at, step, &mut rng);
                assert!(region.contains(next), "{next:?} left {region:?}");
                assert!(distance(at, next) <= step + 1e-9, "{at:?} to {next:?}");
                assert!(heading.is_finite());
                corners += usize::from(next.x == region.min.x || next.x == region.max.x);
                at = next;
            }
            if region.size().0 > 2.0 * step {
                // Folding, not clamping: the walk does not stick to the edges.
                assert!(corners < 1_000, "{corners} of 20000 on an edge in {region:?}");
            }
        }
    }

    #[test]
    fn the_heading_points_to_the_target() {
        let region = Region::whole(100.0, 100.0);
        let mut rng = Rng::new(3);
        let from = Point { x: 50.0, y: 50.0 };
        let (to, heading) = next_target(&region, from, 1.0, &mut rng);
        assert!((to.x - (from.x + heading.cos())).abs() < 1e-9);
        assert!((to.y - (from.y + heading.sin())).abs() < 1e-9);
    }
}
