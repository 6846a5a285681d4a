//! Scene sampling and painting. Every pixel is painted with one named colour, one
//! texture, and at most one shape and part, so the concept masks are exact.

use super::rng::Rng;
use super::shapes::{hit, Blob};
use super::vocab::{self, COLORS, SHAPES, TEXTURES};

/// How a surface is painted: two named colours alternating in a texture.
#[derive(Clone, Copy)]
pub struct Surface {
    pub colors: [usize; 2],
    tints: [[f64; 3]; 2],
    pub texture: usize,
    period: f64,
    angle: f64,
}

#[derive(Clone, Copy)]
enum Kind {
    Shape(usize),
    Blob(Blob),
}

#[derive(Clone, Copy)]
struct Placed {
    kind: Kind,
    cx: f64,
    cy: f64,
    radius: f64,
    angle: f64,
    surface: Surface,
}

pub struct Scene {
    pub size: usize,
    pub class: usize,
    background: Surface,
    distractors: Vec<Placed>,
    target: Placed,
    noise: u64,
}

/// An image and its per-pixel concept labels (global label numbers, 0 = none).
pub struct Rendered {
    pub size: usize,
    pub class: usize,
    pub rgb: Vec<u8>,
    pub color: Vec<u32>,
    pub object: Vec<u32>,
    pub part: Vec<u32>,
    pub texture: Vec<u32>,
}

fn surface(rng: &mut Rng, avoid: &[usize]) -> Surface {
    let a = rng.below_except(COLORS.len(), avoid);
    let mut avoid2 = avoid.to_vec();
    avoid2.push(a);
    let b = rng.below_except(COLORS.len(), &avoid2);
    let mut tint = || {
        [
            rng.range(-12.0, 12.0),
            rng.range(-12.0, 12.0),
            rng.range(-12.0, 12.0),
        ]
    };
    let tints = [tint(), tint()];
    Surface {
        colors: [a, b],
        tints,
        texture: rng.below(TEXTURES.len()),
        period: rng.range(3.0, 6.0),
        angle: rng.range(0.0, std::f64::consts::PI),
    }
}

/// Draws a scene: background, 2-4 distractor blobs, then the target shape on top.
pub fn sample(rng: &mut Rng, size: usize) -> Scene {
    let s = size as f64;
    let class = rng.below(SHAPES.len());
    let background = surface(rng, &[]);
    let n = 2 + rng.below(3);
    let distractors = (0..n)
        .map(|_| {
            let blob = Blob {
                waves: [
                    (
                        2.0 + rng.below(4) as f64,
                        rng.range(0.18, 0.3),
                        rng.range(0.0, 6.3),
                    ),
                    (
                        5.0 + rng.below(3) as f64,
                        rng.range(0.05, 0.12),
                        rng.range(0.0, 6.3),
                    ),
                ],
            };
            Placed {
                kind: Kind::Blob(blob),
                cx: rng.range(0.0, s),
                cy: rng.range(0.0, s),
                radius: rng.range(0.07, 0.14) * s,
                angle: rng.range(0.0, 6.3),
                surface: surface(rng, &[]),
            }
        })
        .collect();
    let target = Placed {
        kind: Kind::Shape(class),
        cx: rng.range(0.36, 0.64) * s,
        cy: rng.range(0.36, 0.64) * s,
        radius: rng.range(0.28, 0.38) * s,
        angle: rng.range(0.0, std::f64::consts::TAU),
        surface: surface(rng, &background.colors),
    };
    Scene {
        size,
        class,
        background,
        distractors,
        target,
        noise: rng.next_u64(),
    }
}

/// True where the surface's second colour shows, at texture coordinates (u, v) in periods.
fn second(texture: usize, u: f64, v: f64) -> bool {
    let fr = |t: f64| t - t.floor();
    match texture {
        0 => fr(u) < 0.5,
        1 => (fr(u) - 0.5).hypot(fr(v) - 0.5) < 0.28,
        2 => (u.floor() + v.floor()).rem_euclid(2.0) == 1.0,
        3 => fr(v + 0.8 * (2.0 * fr(u) - 1.0).abs()) < 0.5,
        4 => fr(u) < 0.22 || fr(v) < 0.22,
        _ => fr(v + 0.3 * (std::f64::consts::TAU * u).sin()) < 0.5,
    }
}

impl Surface {
    /// (colour index, rgb) at pixel offset (dx, dy) from the surface's origin.
    fn paint(&self, dx: f64, dy: f64) -> (usize, [f64; 3]) {
        let (s, c) = self.angle.sin_cos();
        let u = (c * dx + s * dy) / self.period;
        let v = (-s * dx + c * dy) / self.period;
        let k = second(self.texture, u, v) as usize;
        let base = COLORS[self.colors[k]].1;
        let t = self.tints[k];
        (
            self.colors[k],
            [
                base[0] as f64 + t[0],
                base[1] as f64 + t[1],
                base[2] as f64 + t[2],
            ],
        )
    }
}

impl Placed {
    /// (shape hit, part) of the object at pixel centre (px, py), in its own frame.
    fn covers(&self, px: f64, py: f64) -> Option<Option<usize>> {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = ((px - self.cx) / self.radius, (py - self.cy) / self.radius);
        let (x, y) = (c * dx + s * dy, -s * dx + c * dy);
        match self.kind {
            Kind::Shape(k) => hit(k, x, y),
            Kind::Blob(b) => b.contains(x, y).then_some(None),
        }
    }
}

pub fn render(scene: &Scene) -> Rendered {
    let n = scene.size;
    let mut out = Rendered {
        size: n,
        class: scene.class,
        rgb: vec![0; n * n * 3],
        color: vec![0; n * n],
        object: vec![0; n * n],
        part: vec![0; n * n],
        texture: vec![0; n * n],
    };
    let mut noise = Rng::new(scene.noise);
    for py in 0..n {
        for px in 0..n {
            let (x, y) = (px as f64 + 0.5, py as f64 + 0.5);
            let i = py * n + px;
            let mut surf = &scene.background;
            let mut origin = (0.0, 0.0);
            for d in &scene.distractors {
                if d.covers(x, y).is_some() {
                    surf = &d.surface;
                    origin = (d.cx, d.cy);
                }
            }
            if let Some(part) = scene.target.covers(x, y) {
                surf = &scene.target.surface;
                origin = (scene.target.cx, scene.target.cy);
                out.object[i] = vocab::shape_label(scene.class);
                if let Some(p) = part {
                    out.part[i] = vocab::part_label(p);
                }
            }
            let (ci, rgb) = surf.paint(x - origin.0, y - origin.1);
            out.color[i] = vocab::color_label(ci);
            out.texture[i] = vocab::texture_label(surf.texture);
            let jitter = noise.range(-6.0, 6.0);
            for (o, v) in out.rgb[i * 3..i * 3 + 3].iter_mut().zip(rgb) {
                *o = (v + jitter).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}
