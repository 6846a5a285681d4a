// Row bands of one item [C, H, W] (an image run through a network's first layers a band
// of rows at a time): dst rows [dst_row, dst_row + rows) take src rows from src_row on;
// with zero_rest, dst's other rows become 0.

struct BandParams {
    channels: u32,
    width: u32,
    src_rows: u32, // rows of src
    dst_rows: u32, // rows of dst
    src_row: u32,
    dst_row: u32,
    rows: u32,
    zero_rest: u32,
}

@group(0) @binding(0) var<uniform> p: BandParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// one thread a value of dst (zero_rest) or of the rows copied, dispatched [x, 1, z] by
// 64-wide x
@compute @workgroup_size(64, 1, 1)
fn band_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    let span = select(p.rows, p.dst_rows, p.zero_rest == 1u);
    let plane = span * p.width;
    if (i >= p.channels * plane) { return; }
    let c = i / plane;
    let at = i - c * plane;
    let r = at / p.width;
    let x = at - r * p.width;
    // the row of dst written
    let d = select(r + p.dst_row, r, p.zero_rest == 1u);
    let out = (c * p.dst_rows + d) * p.width + x;
    if (d >= p.dst_row && d < p.dst_row + p.rows) {
        dst[out] = src[(c * p.src_rows + d - p.dst_row + p.src_row) * p.width + x];
    } else {
        dst[out] = 0.0;
    }
}
