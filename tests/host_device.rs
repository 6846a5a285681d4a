//! netlens embedded on a host application's own wgpu device and queue.

mod common;
use common::{fixture, load_tensors, rel_l2};

use std::sync::Arc;

use netlens::gpu::Context;
use netlens::graph::Net;

#[test]
fn runs_on_a_wrapped_host_device() {
    // the host opens its device its own way, with its own error handler
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter");
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let host_errors = Arc::new(std::sync::Mutex::new(0));
    let count = host_errors.clone();
    device.on_uncaptured_error(Arc::new(move |_e: wgpu::Error| *count.lock().unwrap() += 1));
    let ctx = Arc::new(Context::from_device(device.clone(), queue.clone()).unwrap());
    // default limits: 128 MiB bindings at most
    assert!(ctx.max_binding() <= 128 << 20);
    let m = netlens::model::load(std::path::Path::new(&fixture("vgg11_tiny.safetensors"))).unwrap();
    let net = Net::new(ctx, m).unwrap();
    let io = load_tensors(&fixture("vgg11_tiny_io.safetensors"));
    let out = net.forward(&io["input.b2"], &[]).unwrap();
    let e = rel_l2(&out.logits.data, &io["b2.logits"].data);
    assert!(e < 1e-4, "logits on the host device: rel L2 {e:.2e}");
    // the host's device keeps working, and its handler saw nothing from netlens
    common::host_device_still_works(&device, &queue);
    assert_eq!(*host_errors.lock().unwrap(), 0);
}
