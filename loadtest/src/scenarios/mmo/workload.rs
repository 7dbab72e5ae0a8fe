//! The mmo workload: how many bots walk where in which world, and when
//! each sends its Moves (one open-loop schedule, bots evenly phased).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::walk::Region;
use crate::figures::WorldGeometry;
use crate::schedule::Schedule;
use crate::settings::Density;
use crate::units::f64_from;

/// What every process runs in one mmo step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MmoWorkload {
    /// Bots in the world (B).
    pub bots: u64,
    /// The world's name.
    pub world: String,
    /// Moves per second per bot.
    pub input_hz: u64,
    /// Where the bots spawn and walk.
    pub density: Density,
    /// Side of the clustered square, world units; none: twice the area-of-interest radius.
    pub cluster_size: Option<f64>,
    /// Distance of each walk target from the last one, as asked (see [`MmoWorkload::step_used`]).
    pub step: f64,
    /// The server's admin endpoint, scraped for tick durations; none: not scraped.
    pub admin: Option<SocketAddr>,
    /// The world, once probed (every share needs it).
    pub geometry: Option<WorldGeometry>,
}

impl MmoWorkload {
    /// Checks the numbers.
    ///
    /// # Errors
    /// A message naming the flag to change.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.bots >= 1, "--bots must be at least 1");
        anyhow::ensure!(!self.world.is_empty(), "--world must not be empty");
        anyhow::ensure!(
            (1..=1000).contains(&self.input_hz),
            "--input-hz must be between 1 and 1000"
        );
        anyhow::ensure!(
            self.step.is_finite() && self.step > 0.0,
            "--step must be a number above 0"
        );
        if let Some(size) = self.cluster_size {
            anyhow::ensure!(
                size.is_finite() && size > 0.0,
                "--cluster-size must be a number above 0"
            );
        }
        Ok(())
    }

    /// The step the bots walk: `--step`, but at most what the server moves an
    /// entity between two Moves (`max_speed / input_hz`), so every target is
    /// reached before the next one is sent.
    pub fn step_used(&self) -> f64 {
        let legal = self
            .geometry
            .filter(|geometry| geometry.max_speed > 0.0)
            .map_or(f64::INFINITY, |geometry| geometry.max_speed / f64_from(self.input_hz));
        self.step.min(legal)
    }

    /// Where the bots spawn and walk (nothing before the probe).
    pub fn region(&self) -> Option<Region> {
        let geometry = self.geometry?;
        Some(match self.density {
            Density::Dispersed => Region::whole(geometry.width, geometry.height),
            Density::Clustered => Region::centred(
                geometry.width,
                geometry.height,
                self.cluster_size.unwrap_or(2.0 * geometry.aoi_radius),
            ),
        })
    }

    /// The open-loop schedule of every bot's Moves: bot `b`'s move `k` at
    /// `start + k / input_hz + b / (B × input_hz)`.
    ///
    /// # Errors
    /// No bots or no rate (the workload was not validated).
    pub fn schedule(&self, start_ns: u64) -> anyhow::Result<Schedule> {
        Schedule::new(start_ns, self.bots.saturating_mul(self.input_hz), self.bots)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A probed workload: 100 bots at 10 Moves/s asking for a step of 2 in
    /// a 2000 × 1000 world where they may walk 10 units/s.
    pub fn workload(density: Density) -> MmoWorkload {
        MmoWorkload {
            bots: 100,
            world: "w".into(),
            input_hz: 10,
            density,
            cluster_size: None,
            step: 2.0,
            admin: None,
            geometry: Some(WorldGeometry {
                width: 2000.0,
                height: 1000.0,
                aoi_radius: 50.0,
                max_speed: 10.0,
                tick_rate_hz: 20,
                position_quantum: 0.01,
            }),
        }
    }

    #[test]
    fn validation_names_the_flag() {
        assert!(workload(Density::Dispersed).validate().is_ok());
        for (broken, flag) in [
            (
                MmoWorkload {
                    bots: 0,
                    ..workload(Density::Dispersed)
                },
                "--bots",
            ),
            (
                MmoWorkload {
                    input_hz: 0,
                    ..workload(Density::Dispersed)
                },
                "--input-hz",
            ),
            (
                MmoWorkload {
                    step: f64::NAN,
                    ..workload(Density::Dispersed)
                },
                "--step",
            ),
            (
                MmoWorkload {
                    cluster_size: Some(-1.0),
                    ..workload(Density::Clustered)
                },
                "--cluster-size",
            ),
        ] {
            let error = broken.validate().unwrap_err().to_string();
            assert!(error.contains(flag), "{error}");
        }
    }

    #[test]
    fn the_step_stays_legal() {
        // 10 units/s at 10 Moves/s: at most 1 unit per Move.
        assert_eq!(workload(Density::Dispersed).step_used(), 1.0);
        let small = MmoWorkload {
            step: 0.25,
            ..workload(Density::Dispersed)
        };
        assert_eq!(small.step_used(), 0.25);
        let unprobed = MmoWorkload {
            geometry: None,
            ..workload(Density::Dispersed)
        };
        assert_eq!(unprobed.step_used(), 2.0);
        assert_eq!(unprobed.region(), None);
    }

    #[test]
    fn regions_by_density() {
        assert_eq!(
            workload(Density::Dispersed).region(),
            Some(Region::whole(2000.0, 1000.0))
        );
        // Clustered: a square of twice the AOI radius, centred.
        let clustered = workload(Density::Clustered).region().unwrap();
        assert_eq!(clustered, Region::centred(2000.0, 1000.0, 100.0));
        assert_eq!(clustered.size(), (100.0, 100.0));
        let sized = MmoWorkload {
            cluster_size: Some(10.0),
            ..workload(Density::Clustered)
        };
        assert_eq!(sized.region().unwrap().size(), (10.0, 10.0));
    }

    #[test]
    fn bots_are_evenly_phased() {
        let schedule = workload(Density::Dispersed).schedule(0).unwrap();
        // 100 bots at 10 Hz: bot b's first Move at b ms, then every 100 ms.
        assert_eq!(schedule.send_time_ns(0, 0), 0);
        assert_eq!(schedule.send_time_ns(7, 0), 7_000_000);
        assert_eq!(schedule.send_time_ns(7, 3), 307_000_000);
        assert_eq!(schedule.count_before(7, 1_000_000_000), 10);
    }
}
