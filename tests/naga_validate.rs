//! Every WGSL kernel parses and validates with naga, no GPU needed; every kernel's entry
//! point exists and declares the bindings the pipeline cache gives it.

use netlens::gpu::Kernel;

#[test]
fn every_kernel_validates() {
    for kernel in Kernel::ALL {
        let (file, entry, access) = kernel.spec();
        let module = naga::front::wgsl::parse_str(kernel.source())
            .unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(kernel.source())));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            // what wgpu grants on native backends: subgroups, unpack2x16float
            naga::valid::Capabilities::SUBGROUP
                | naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let ep = module.entry_points.iter().find(|e| e.name == entry);
        assert!(ep.is_some(), "{file} has no entry point {entry}");
        // bindings 0..=len(access) exist in group 0
        for b in 0..=access.len() as u32 {
            let found = module.global_variables.iter().any(|(_, g)| {
                g.binding
                    .as_ref()
                    .is_some_and(|rb| rb.group == 0 && rb.binding == b)
            });
            assert!(found, "{file}: binding {b} missing for {entry}");
        }
    }
}
