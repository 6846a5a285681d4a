// V = B^T d B for every 4 x 4 input patch d (padding reads 0): [16][n][cc][tiles].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;

// Row r of slot s's patch (four columns from x0), 0 outside the plane.
fn patch_row(base: u32, y: i32, x0: i32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    if (y < 0 || y >= i32(u.h)) { return r; }
    let row = base + u32(y) * u.w;
    for (var j = 0; j < 4; j++) {
        let xx = x0 + j;
        if (xx >= 0 && xx < i32(u.w)) { r[j] = x[row + u32(xx)]; }
    }
    return r;
}

// B^T applied along a row: (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
fn bt(d: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(d.x - d.z, d.y + d.z, d.z - d.y, d.y - d.w);
}

@compute @workgroup_size(64, 1, 1)
fn winograd_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = thread_index(gid, nwg);
    if (i >= u.n * u.cc * u.th * u.tw) { return; }
    let s = slot(i);
    let base = ((u.item0 + s.b) * u.c + u.c0 + s.ch) * u.h * u.w;
    let y0 = 2 * i32(s.ty) - i32(u.pad_h);
    let x0 = 2 * i32(s.tx) - i32(u.pad_w);
    let d0 = patch_row(base, y0, x0);
    let d1 = patch_row(base, y0 + 1, x0);
    let d2 = patch_row(base, y0 + 2, x0);
    let d3 = patch_row(base, y0 + 3, x0);
    // B^T down the columns, then along the rows
    let r = array(bt(d0 - d2), bt(d1 + d2), bt(d2 - d1), bt(d1 - d3));
    for (var a = 0u; a < 4u; a++) {
        for (var b = 0u; b < 4u; b++) {
            v[point_index(4u * a + b, s)] = r[a][b];
        }
    }
}
