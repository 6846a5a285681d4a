//! `netlens doctor`: what netlens finds on this machine (adapter, backend, driver, limits,
//! kernel variants), and the environment variables that change it.

use crate::error::Result;
use crate::gpu::Context;

pub fn run(gpu: super::Gpu) -> Result<()> {
    println!("netlens {}", env!("CARGO_PKG_VERSION"));
    for var in [
        "NETLENS_BACKEND",
        "NETLENS_GEMM",
        "NETLENS_WEIGHTS",
        "NETLENS_WINOGRAD",
        "XDG_RUNTIME_DIR",
    ] {
        let v = std::env::var(var).unwrap_or_else(|_| "(unset)".into());
        println!("{var:<16} {v}");
    }
    let ctx = Context::new(gpu.backend)?;
    let info = ctx.device().adapter_info();
    let l = &ctx.limits;
    println!("adapter          {}", info.name);
    println!("backend          {:?}", info.backend);
    println!("device type      {:?}", info.device_type);
    println!("driver           {} {}", info.driver, info.driver_info);
    println!("GEMM kernels     {}", ctx.gemm().name());
    let winograd = match (ctx.gemm(), ctx.winograd()) {
        (g, w) if g.tiled() => format!("{w:?} (3x3 stride-1 convs by F(2x2, 3x3))"),
        _ => "not used by these GEMM kernels".into(),
    };
    println!("Winograd         {winograd}");
    println!("weights          {:?}", gpu.weights);
    println!(
        "subgroups        {}",
        if ctx.device().features().contains(wgpu::Features::SUBGROUP) {
            format!(
                "{}..{} lanes",
                info.subgroup_min_size, info.subgroup_max_size
            )
        } else {
            "no".into()
        }
    );
    let mib = |b: u64| format!("{} MiB", b >> 20);
    println!(
        "storage binding  {} (larger tensors are split)",
        mib(l.max_storage_buffer_binding_size)
    );
    println!("buffer           {}", mib(l.max_buffer_size));
    println!(
        "workgroup        {} invocations, {} KiB shared",
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroup_storage_size >> 10
    );
    Ok(())
}
