// Winograd's F(2x2, 3x3) for 3x3 stride-1 convolutions on the tiled GEMMs: an output tile
// of 2 x 2 pixels is A^T [(G g G^T) ⊙ (B^T d B)] A for its 4 x 4 input patch d, so the
// 16 products summed over input channels are 16 independent GEMMs (conv2d.wgsl's groups)
// of 2.25x fewer multiply-adds than the direct convolution.
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// Transformed tensors are [16][n][c][tiles] (point, item, channel, tile): for one point,
// an NCHW stack of planes of `tiles` pixels, which the GEMM reads as a 1x1 convolution.

struct WinogradParams {
    n: u32,      // items this launch transforms
    c: u32,      // channels an item of the plain tensor (read by the input transform,
                 // written by the output one)
    c0: u32,     // the first of those channels transformed
    cc: u32,     // channels transformed (a weight chunk's, or all)
    h: u32, w: u32,         // the plain tensor's plane
    pad_h: u32, pad_w: u32, // input transform: the convolution's padding
    th: u32, tw: u32,       // tiles down (this launch's) and across (ceil(out_w / 2))
    item0: u32,  // the plain tensor's item of this launch's first
    flags: u32,  // output transform: bit0 ReLU, bit1 bias, bit2 accumulate, bit6 scale
    ty0: u32,    // the tile row of this launch's first (an item too large runs in strips)
    _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> u: WinogradParams;

// Thread i of a launch over every (item, channel, tile): its parts (t the tile in the
// launch, ty its row in the item).
struct Slot { b: u32, ch: u32, t: u32, ty: u32, tx: u32 }

fn slot(i: u32) -> Slot {
    let tiles = u.th * u.tw;
    let t = i % tiles;
    let rest = i / tiles;
    let ty = t / u.tw;
    return Slot(rest / u.cc, rest % u.cc, t, u.ty0 + ty, t - ty * u.tw);
}

// Index of point k's value of slot s in a transformed tensor.
fn point_index(k: u32, s: Slot) -> u32 {
    return ((k * u.n + s.b) * u.cc + s.ch) * (u.th * u.tw) + s.t;
}

// The linear thread index of a 1-D launch (recorder::grid's overflow into z).
fn thread_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.z * nwg.x * 64u;
}
