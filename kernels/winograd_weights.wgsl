// U = G g G^T for every 3 x 3 kernel g of a weight chunk [rows][cin][3][3] (f32), stored
// [16][rows][cin] for the forward GEMMs, or with `flip` of g rotated by 180 degrees and
// stored [16][cin][rows] for the input gradient's (a 3x3 stride-1 convolution with the
// transposed, flipped weights).

struct WeightParams { rows: u32, cin: u32, flip: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: WeightParams;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// G applied along a row of 3: (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2).
fn gt(g: vec3<f32>) -> vec4<f32> {
    return vec4<f32>(g.x, 0.5 * (g.x + g.y + g.z), 0.5 * (g.x - g.y + g.z), g.z);
}

@compute @workgroup_size(64, 1, 1)
fn winograd_weights(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.z * nwg.x * 64u;
    if (i >= p.rows * p.cin) { return; }
    let r = i / p.cin;
    let c = i - r * p.cin;
    var g: array<f32, 9>;
    for (var k = 0u; k < 9u; k++) {
        g[k] = w[i * 9u + select(k, 8u - k, p.flip != 0u)];
    }
    // G down the columns (rows of g), then along the rows
    let g0 = vec3<f32>(g[0], g[1], g[2]);
    let g1 = vec3<f32>(g[3], g[4], g[5]);
    let g2 = vec3<f32>(g[6], g[7], g[8]);
    let t = array(gt(g0), gt(0.5 * (g0 + g1 + g2)), gt(0.5 * (g0 - g1 + g2)), gt(g2));
    for (var a = 0u; a < 4u; a++) {
        for (var b = 0u; b < 4u; b++) {
            let k = 4u * a + b;
            var o = (k * p.rows + r) * p.cin + c;
            if (p.flip != 0u) { o = (k * p.cin + c) * p.rows + r; }
            out[o] = t[a][b];
        }
    }
}
