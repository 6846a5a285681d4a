//! Shape classes in unit coordinates (circumradius about 1): membership and parts.

/// Which shape (index into `vocab::SHAPES`) covers local point (x, y), and its part
/// (index into `vocab::PARTS`) if the shape has parts there.
pub fn hit(shape: usize, x: f64, y: f64) -> Option<Option<usize>> {
    let r = (x * x + y * y).sqrt();
    match shape {
        0 => (r <= 1.0).then_some(None),
        1 => {
            // equilateral triangle, circumradius 1: apothem 0.5 on three sides
            let inside = (0..3).all(|k| {
                let a = std::f64::consts::FRAC_PI_2
                    + std::f64::consts::PI
                    + k as f64 * 2.0 * std::f64::consts::PI / 3.0;
                x * a.cos() + y * a.sin() <= 0.5
            });
            inside.then_some(None)
        }
        2 => (x.abs().max(y.abs()) <= 0.75).then_some(None),
        3 => {
            let star = star_polygon();
            if !in_polygon(&star, x, y) {
                return None;
            }
            let core = &star.iter().skip(1).step_by(2).copied().collect::<Vec<_>>();
            Some((!in_polygon(core, x, y)).then_some(0))
        }
        4 => {
            let (ax, ay) = (x.abs(), y.abs());
            let bar = |a: f64, b: f64| a <= 0.28 && b <= 0.92;
            if !(bar(ax, ay) || bar(ay, ax)) {
                return None;
            }
            Some((ax > 0.28 || ay > 0.28).then_some(1))
        }
        5 => (0.55..=1.0).contains(&r).then_some(None),
        6 => {
            if (-0.9..=0.15).contains(&x) && y.abs() <= 0.2 {
                Some(Some(3))
            } else if x > 0.15 && x <= 0.95 && y.abs() <= 0.62 * (0.95 - x) / 0.8 {
                Some(Some(2))
            } else {
                None
            }
        }
        7 => (r <= 1.0 && ((x - 0.45).powi(2) + y * y).sqrt() > 0.8).then_some(None),
        _ => None,
    }
}

/// A five-pointed star: tips at radius 1, valleys at 0.42, first tip pointing up.
fn star_polygon() -> Vec<(f64, f64)> {
    (0..10)
        .map(|i| {
            let a = -std::f64::consts::FRAC_PI_2 + i as f64 * std::f64::consts::PI / 5.0;
            let r = if i % 2 == 0 { 1.0 } else { 0.42 };
            (r * a.cos(), r * a.sin())
        })
        .collect()
}

/// Even-odd rule.
fn in_polygon(p: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = p.len() - 1;
    for i in 0..p.len() {
        let (xi, yi) = p[i];
        let (xj, yj) = p[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// A distractor blob: a wobbly closed curve, unlike any class.
#[derive(Clone, Copy)]
pub struct Blob {
    pub waves: [(f64, f64, f64); 2], // (frequency, amplitude, phase)
}

impl Blob {
    pub fn contains(&self, x: f64, y: f64) -> bool {
        let r = (x * x + y * y).sqrt();
        let a = y.atan2(x);
        let edge = 1.0
            + self
                .waves
                .iter()
                .map(|(f, amp, ph)| amp * (f * a + ph).sin())
                .sum::<f64>();
        r <= edge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cover_their_centres_and_parts() {
        assert_eq!(hit(0, 0.0, 0.0), Some(None));
        assert_eq!(hit(5, 0.0, 0.0), None, "a ring is hollow");
        assert_eq!(hit(3, 0.0, -0.9), Some(Some(0)), "the top star tip");
        assert_eq!(hit(3, 0.0, 0.0), Some(None), "star centre is no tip");
        assert_eq!(hit(4, 0.8, 0.0), Some(Some(1)));
        assert_eq!(hit(4, 0.8, 0.8), None);
        assert_eq!(hit(6, 0.5, 0.0), Some(Some(2)));
        assert_eq!(hit(6, -0.5, 0.0), Some(Some(3)));
        assert_eq!(hit(7, 0.9, 0.0), None, "the crescent's bite");
        assert_eq!(hit(7, -0.9, 0.0), Some(None));
    }
}
