// Prelude of conv2d_cpu.wgsl without subgroups (`cpu-fetch`: llvmpipe through GL, other
// software adapters whose subgroups are not 8 wide): every lane loads every pixel's
// inputs itself: 16 texel loads a step where a subgroup lane makes 2 and broadcasts
// them. A load whose coordinates are the same in every lane still costs one load per
// lane on a CPU driver, but each feeds 8 multiply-adds. The kernels this replaced read
// the weights at lane-uniform addresses from uniform buffers, which Mesa 22.3 also loads
// lane by lane when the index varies in a loop (each weight feeding 2 multiply-adds):
// 3-6x slower on llvmpipe (README, Kernel variants).

// The workgroup's 16 pixels and their current taps.
var<private> px16: array<Pixel, 16>;
var<private> tap16: array<Tap, 16>;

fn pixels_init(m0: u32, lid: u32, plane: u32, width: u32) {
    for (var k = 0u; k < 2u * LANES; k++) {
        px16[k] = group_pixel(m0, k, plane, width);
    }
}

// Kernel tap (ky, kx) of every pixel (conv2d_cpu_share.wgsl's taps_set).
fn taps_set(total: u32, offset: u32, count: u32, in_plane: u32, ky: u32, kx: u32, backward: bool) {
    for (var k = 0u; k < 2u * LANES; k++) {
        let px = px16[k];
        tap16[k] = tap_of(px, xbase(px.b, total, offset, count, in_plane), ky, kx, backward);
    }
}

// Nothing: no lane shares its loads here (pixel_input loads them all).
fn own_input(j: u32, c4: u32, plane: u32, count: u32, live: bool) -> vec4<f32> {
    return vec4<f32>(0.0);
}

// Pixel k of set j (pixels 8 j + k): its 4 reduction channels from 4 c4 (0 unless
// `live`).
fn pixel_input(own: vec4<f32>, j: u32, k: u32, c4: u32, plane: u32, count: u32, live: bool) -> vec4<f32> {
    let t = tap16[LANES * j + k];
    return xload4(t.off, c4, plane, count, t.ok && live);
}

// The subgroup version's entry points, with the lane's index in the workgroup.
@compute @workgroup_size(8, 1, 1)
fn conv2d_forward_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    forward(wid.x + wid.z * nwg.x, wid.y, lid, lid);
}

@compute @workgroup_size(8, 1, 1)
fn conv2d_backward_input_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    backward_input(wid.x + wid.z * nwg.x, wid.y, lid, lid);
}
