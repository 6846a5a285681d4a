// Prelude of conv2d_cpu.wgsl for subgroups of exactly 8 lanes (`cpu`, `cpu-tex`): lane s
// loads the inputs of the workgroup's pixels s and 8 + s, and subgroupBroadcast gives
// pixel k's to every lane (a CPU driver turns a broadcast into two or three shuffles).

// This lane's pixels (set 0: m0 + lid, set 1: m0 + 8 + lid) and their current taps.
var<private> px_a: Pixel;
var<private> px_b: Pixel;
var<private> tap_a: Tap;
var<private> tap_b: Tap;

fn pixels_init(m0: u32, lid: u32, plane: u32, width: u32) {
    px_a = group_pixel(m0, lid, plane, width);
    px_b = group_pixel(m0, LANES + lid, plane, width);
}

// Kernel tap (ky, kx) of this lane's pixels, in an input of `total` channels an item of
// which the launch reads `count` from `offset`, planes of `in_plane` pixels.
fn taps_set(total: u32, offset: u32, count: u32, in_plane: u32, ky: u32, kx: u32, backward: bool) {
    tap_a = tap_of(px_a, xbase(px_a.b, total, offset, count, in_plane), ky, kx, backward);
    tap_b = tap_of(px_b, xbase(px_b.b, total, offset, count, in_plane), ky, kx, backward);
}

// This lane's pixel of set j: its 4 reduction channels from 4 c4 (0 unless `live`).
fn own_input(j: u32, c4: u32, plane: u32, count: u32, live: bool) -> vec4<f32> {
    if (j == 0u) { return xload4(tap_a.off, c4, plane, count, tap_a.ok && live); }
    return xload4(tap_b.off, c4, plane, count, tap_b.ok && live);
}

// Pixel k of the set, in every lane: lane k's `own` (k a constant after inlining).
fn pixel_input(own: vec4<f32>, j: u32, k: u32, c4: u32, plane: u32, count: u32, live: bool) -> vec4<f32> {
    switch (k) {
        case 0u: { return vec4<f32>(subgroupBroadcast(own.x, 0u), subgroupBroadcast(own.y, 0u), subgroupBroadcast(own.z, 0u), subgroupBroadcast(own.w, 0u)); }
        case 1u: { return vec4<f32>(subgroupBroadcast(own.x, 1u), subgroupBroadcast(own.y, 1u), subgroupBroadcast(own.z, 1u), subgroupBroadcast(own.w, 1u)); }
        case 2u: { return vec4<f32>(subgroupBroadcast(own.x, 2u), subgroupBroadcast(own.y, 2u), subgroupBroadcast(own.z, 2u), subgroupBroadcast(own.w, 2u)); }
        case 3u: { return vec4<f32>(subgroupBroadcast(own.x, 3u), subgroupBroadcast(own.y, 3u), subgroupBroadcast(own.z, 3u), subgroupBroadcast(own.w, 3u)); }
        case 4u: { return vec4<f32>(subgroupBroadcast(own.x, 4u), subgroupBroadcast(own.y, 4u), subgroupBroadcast(own.z, 4u), subgroupBroadcast(own.w, 4u)); }
        case 5u: { return vec4<f32>(subgroupBroadcast(own.x, 5u), subgroupBroadcast(own.y, 5u), subgroupBroadcast(own.z, 5u), subgroupBroadcast(own.w, 5u)); }
        case 6u: { return vec4<f32>(subgroupBroadcast(own.x, 6u), subgroupBroadcast(own.y, 6u), subgroupBroadcast(own.z, 6u), subgroupBroadcast(own.w, 6u)); }
        default: { return vec4<f32>(subgroupBroadcast(own.x, 7u), subgroupBroadcast(own.y, 7u), subgroupBroadcast(own.z, 7u), subgroupBroadcast(own.w, 7u)); }
    }
}

@compute @workgroup_size(8, 1, 1)
fn conv2d_forward_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    forward(wid.x + wid.z * nwg.x, wid.y, lid, sid);
}

@compute @workgroup_size(8, 1, 1)
fn conv2d_backward_input_cpu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sid: u32,
) {
    backward_input(wid.x + wid.z * nwg.x, wid.y, lid, sid);
}
