//! The interest grid: entity indices bucketed by cell, so that finding the
//! entities near a point costs the cells around it, not the whole world.

use num_traits::ToPrimitive;

use super::{Entity, SpaceSettings};
use crate::protocol::Point;

/// The uniform grid: entity indices bucketed by cell (a counting sort,
/// rebuilt every tick).
#[derive(Debug, Default)]
pub struct Grid {
    cell: f32,
    columns: usize,
    rows: usize,
    /// `starts[c]..starts[c + 1]` are cell `c`'s entries of `order`.
    starts: Vec<u32>,
    /// Entity indices, cell by cell.
    order: Vec<u32>,
    /// Each entity's cell, by entity index.
    cells: Vec<usize>,
    /// The next free place of each cell in `order`, while rebuilding.
    cursor: Vec<u32>,
}

impl Grid {
    pub(super) fn new(settings: &SpaceSettings) -> Grid {
        let count = |side: f32| (side / settings.cell_size).ceil().to_usize().unwrap_or(1).max(1);
        let (columns, rows) = (count(settings.width), count(settings.height));
        Grid {
            cell: settings.cell_size,
            columns,
            rows,
            starts: vec![0; columns * rows + 1],
            order: Vec::new(),
            cells: Vec::new(),
            cursor: Vec::new(),
        }
    }

    fn column(&self, x: f32) -> usize {
        (x / self.cell).floor().to_usize().unwrap_or(0).min(self.columns - 1)
    }

    fn row(&self, y: f32) -> usize {
        (y / self.cell).floor().to_usize().unwrap_or(0).min(self.rows - 1)
    }

    pub(super) fn rebuild(&mut self, entities: &[Entity]) {
        let mut cells = std::mem::take(&mut self.cells);
        cells.clear();
        cells.extend(
            entities
                .iter()
                .map(|e| self.row(e.position.y) * self.columns + self.column(e.position.x)),
        );
        self.cells = cells;
        self.starts.fill(0);
        for &cell in &self.cells {
            self.starts[cell + 1] += 1;
        }
        for c in 1..self.starts.len() {
            self.starts[c] += self.starts[c - 1];
        }
        self.cursor.clone_from(&self.starts);
        self.order.clear();
        self.order.resize(entities.len(), 0);
        for (i, &cell) in self.cells.iter().enumerate() {
            let slot = &mut self.cursor[cell];
            self.order[usize::try_from(*slot).unwrap_or(0)] = u32::try_from(i).unwrap_or(u32::MAX);
            *slot += 1;
        }
    }

    /// Indices of the entities in the cells within `radius` of `center`.
    pub(super) fn around(&self, center: Point, radius: f32) -> impl Iterator<Item = usize> + '_ {
        let (c0, c1) = (self.column(center.x - radius), self.column(center.x + radius));
        let (r0, r1) = (self.row(center.y - radius), self.row(center.y + radius));
        (r0..=r1).flat_map(move |row| {
            let first = row * self.columns + c0;
            let last = row * self.columns + c1;
            let (from, to) = (self.starts[first], self.starts[last + 1]);
            self.order[usize::try_from(from).unwrap_or(0)..usize::try_from(to).unwrap_or(0)]
                .iter()
                .filter_map(|&i| usize::try_from(i).ok())
        })
    }
}
