//! Typed, recoverable errors: a host application's device opened with its limits forced
//! down (bindings of 768 KiB: one item a pass, the first linear layer's weights split, a
//! larger item's first layers in row bands) runs the demo model to the same maps, refuses
//! what cannot fit with `Error::TooLarge`, and stays usable; a destroyed device gives `Error::DeviceLost`, not a panic.

mod common;

use std::sync::{Arc, Mutex};

use netlens::explain::method::{attribute, Settings};
use netlens::explain::Target;
use netlens::gpu::Context;
use netlens::graph::Net;
use netlens::{Array, Error};

const BINDING: u64 = 768 << 10;

fn demo_on(ctx: Arc<Context>) -> Net {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/shapes-vgg.safetensors");
    Net::new(ctx, netlens::model::load(path.as_ref()).unwrap()).unwrap()
}

fn gradient(net: &Net, x: &Array) -> netlens::Result<Array> {
    let bar = indicatif::ProgressBar::hidden();
    let s = Settings::default();
    Ok(attribute(net, "gradient", x, &Target::Argmax, &s, &bar)?.map)
}

#[test]
fn forced_low_limits_split_or_fail_typed_and_leave_the_host_device_usable() {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .expect("an adapter");
    let limits = wgpu::Limits {
        max_storage_buffer_binding_size: BINDING,
        max_buffer_size: 4 * BINDING,
        ..adapter.limits()
    };
    let desc = wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    let host_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = host_errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        seen.lock().unwrap().push(e.to_string())
    }));
    let ctx = Arc::new(Context::from_device(device.clone(), queue.clone()).unwrap());
    assert_eq!(ctx.max_binding(), BINDING);
    let net = demo_on(ctx.clone());
    assert_eq!(net.max_batch(&[8, 3, 64, 64]).unwrap(), 1);

    let names = ["arrow", "circle", "star"];
    let x = common::samples(&net, &names);
    let small = gradient(&net, &x).unwrap();
    let full = gradient(&common::demo(), &x).unwrap();
    common::assert_close(
        &small.data,
        &full.data,
        1e-5,
        1e-4,
        "gradient, 768 KiB bindings",
    );

    // one item whose first activation cannot fit one binding runs in row bands
    // (tests/bands.rs), unless a band of one row is already too wide: a typed error
    let big = Array::new(vec![1, 3, 128, 128], vec![0.5; 3 * 128 * 128]).unwrap();
    assert!(net.max_batch(&big.shape).is_err());
    let banded = gradient(&net, &big).unwrap();
    let whole = gradient(&common::demo(), &big).unwrap();
    common::assert_close(&banded.data, &whole.data, 1e-6, 1e-4, "gradient in bands");
    let wide = Array::new(vec![1, 3, 32, 20000], vec![0.5; 3 * 32 * 20000]).unwrap();
    match gradient(&net, &wide) {
        Err(Error::TooLarge {
            bytes, limit, hint, ..
        }) => {
            assert!(bytes > limit && limit == BINDING && hint.contains("narrower"))
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|a| a.shape)),
    }
    // and everything keeps working: netlens on the same context, the host on its device
    assert_eq!(gradient(&net, &x).unwrap(), small);
    common::host_device_still_works(&device, &queue);
    assert!(
        host_errors.lock().unwrap().is_empty(),
        "{:?}",
        host_errors.lock().unwrap()
    );
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let ctx = Arc::new(Context::from_env().expect("a wgpu adapter"));
    let net = demo_on(ctx.clone());
    let x = common::samples(&net, &["ring"]);
    assert!(gradient(&net, &x).is_ok());
    ctx.device().destroy();
    let e = gradient(&net, &x).unwrap_err();
    eprintln!("after destroy: {e}");
    assert!(
        matches!(e, Error::DeviceLost(_) | Error::Validation { .. }),
        "{e}"
    );
    // a second call after the loss is still an error, not a panic
    assert!(gradient(&net, &x).is_err());
}
