//! Plain-Rust references of the extremal-perturbation kernels, written from TorchRay's
//! definitions (unfold, nearest up-sampling, bump weights, softmax pooling; sorting).

use crate::ops::extremal::MaskGeometry;

/// The full masks [K, oh, ow] (clamped) of parameters pm [K, hin, win], in f64.
pub fn smooth_mask(pm: &[f64], k: usize, g: &MaskGeometry) -> Vec<f64> {
    let span = 2 * g.radius + 1;
    let c = g.coldness as f64;
    let sigma = g.sigma as f64;
    let mut out = vec![0.0; k * g.oh * g.ow];
    for r in 0..k {
        for u in 0..g.oh {
            for v in 0..g.ow {
                let vals: Vec<f64> = (0..span * span)
                    .map(|t| {
                        let iy = (u / g.step) as isize + (t / span) as isize - g.pad as isize;
                        let ix = (v / g.step) as isize + (t % span) as isize - g.pad as isize;
                        let inside =
                            iy >= 0 && ix >= 0 && (iy as usize) < g.hin && (ix as usize) < g.win;
                        let p = if inside {
                            pm[(r * g.hin + iy as usize) * g.win + ix as usize]
                        } else {
                            0.0
                        };
                        let dy = u as f64 - (sigma + (g.step as isize * iy) as f64);
                        let dx = v as f64 - (sigma + (g.step as isize * ix) as f64);
                        let z = ((dy * dy + dx * dx).sqrt() / sigma - 0.5).max(0.0);
                        (-2.0 * z * z).exp() * p
                    })
                    .collect();
                let mx = vals.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = vals.iter().map(|x| (c * (x - mx)).exp()).collect();
                let z: f64 = e.iter().sum();
                let m: f64 = vals.iter().zip(&e).map(|(x, w)| x * w).sum::<f64>() / z;
                out[(r * g.oh + u) * g.ow + v] = m.clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// The pyramid [levels, N, C, h, w] read at each mask's level (m, or 1 − m when
/// `invert`): [K, C, h, w], mask k on item k / areas, cropped from the full mask.
pub fn pyramid_mix(
    full: &[f64],
    pyramid: &[f64],
    dims: [usize; 5],
    areas: usize,
    g: &MaskGeometry,
    invert: bool,
) -> Vec<f64> {
    let [levels, n, c, h, w] = dims;
    let k = n * areas;
    let mut out = vec![0.0; k * c * h * w];
    for r in 0..k {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let mut m = full[(r * g.oh + y + g.crop) * g.ow + x + g.crop];
                    if invert {
                        m = 1.0 - m;
                    }
                    let wv = m * (levels - 1) as f64;
                    let l0 = wv.floor() as usize;
                    let l1 = (l0 + 1).min(levels - 1);
                    let f = wv - l0 as f64;
                    let at = |l: usize| pyramid[(((l * n + r / areas) * c + ch) * h + y) * w + x];
                    out[((r * c + ch) * h + y) * w + x] = (1.0 - f) * at(l0) + f * at(l1);
                }
            }
        }
    }
    out
}

/// TorchRay's area regulariser per row of `full` [K, n]: weight · mean((sort(row) − ref)²)
/// with ref = ⌊n(1 − a)⌋ zeros then ones, sorted stably (ties by index), and its gradient.
pub fn area_regulariser(
    full: &[f64],
    k: usize,
    areas: &[f64],
    weight: f64,
) -> (Vec<f64>, Vec<f64>) {
    let n = full.len() / k;
    let mut loss = vec![0.0; k];
    let mut grad = vec![0.0; full.len()];
    for r in 0..k {
        let row = &full[r * n..(r + 1) * n];
        let q = (n as f64 * (1.0 - areas[r % areas.len()])).floor() as usize;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| row[*a].total_cmp(&row[*b]));
        for (rank, &i) in order.iter().enumerate() {
            let d = row[i] - if rank < q { 0.0 } else { 1.0 };
            loss[r] += weight * d * d / n as f64;
            grad[r * n + i] = 2.0 * weight * d / n as f64;
        }
    }
    (loss, grad)
}
