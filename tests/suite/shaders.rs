//! Every shader parses and validates with naga and translates with the SPIR-V, MSL and HLSL
//! back ends, for every entry point, so a shader that Metal or DX12 would reject fails here.

use gconv::kernel::Shader;

/// The shader parsed and validated with no optional capabilities (no f64, no subgroups: only
/// what every back end offers), except subgroups for the shaders of shaders/subgroup/ and
/// 64-bit integers for the wide-store variants, which are only compiled where the device has
/// them.
fn validated(shader: Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let name = shader.file_name();
    let module = naga::front::wgsl::parse_str(&shader.source())
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&shader.source())));
    let mut capabilities = naga::valid::Capabilities::empty();
    if shader.uses_subgroups() {
        capabilities |= naga::valid::Capabilities::SUBGROUP;
    }
    if shader.uses_int64() {
        capabilities |= naga::valid::Capabilities::SHADER_INT64;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&shader.source())));
    (module, info)
}

/// Every `.wgsl` file under `dir` (relative to shaders/), except the shared parts in
/// shaders/shared/, which are compiled as parts of the others.
fn shader_files(root: &std::path::Path, dir: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(root.join(dir)).expect("shaders/") {
        let entry = entry.expect("entry");
        let name = entry.file_name().into_string().expect("UTF-8 name");
        let path = if dir.is_empty() { name.clone() } else { format!("{dir}/{name}") };
        if entry.file_type().expect("type").is_dir() {
            if path != "shared" {
                shader_files(root, &path, out);
            }
        } else if name.ends_with(".wgsl") {
            out.push(path);
        }
    }
}

#[test]
fn every_shader_validates_and_translates_for_vulkan_metal_and_dx12() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders"));
    let mut on_disk = Vec::new();
    shader_files(root, "", &mut on_disk);
    on_disk.sort();
    let mut registered: Vec<String> =
        Shader::ALL.iter().map(|s| s.file_name().to_string()).collect();
    registered.sort();
    // A file compiled with either set of shared parts (`Shader::wide`) is registered twice.
    registered.dedup();
    assert_eq!(
        on_disk, registered,
        "every shader outside shaders/shared/ must be registered in gconv::kernel::Shader"
    );

    for &shader in Shader::ALL {
        let name = shader.file_name();
        let (module, info) = validated(shader);
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
        for ep in &module.entry_points {
            let ep_name = ep.name.as_str();
            let (module, info) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, ep_name)),
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{name}::{ep_name}: overrides: {e}"));
            let stage = Some((naga::ShaderStage::Compute, ep_name.to_string()));
            naga::back::spv::write_vec(
                &module,
                &info,
                &naga::back::spv::Options::default(),
                Some(&naga::back::spv::PipelineOptions {
                    shader_stage: naga::ShaderStage::Compute,
                    entry_point: ep_name.to_string(),
                }),
            )
            .unwrap_or_else(|e| panic!("{name}::{ep_name}: SPIR-V: {e}"));
            naga::back::msl::write_string(
                &module,
                &info,
                &naga::back::msl::Options::default(),
                &naga::back::msl::PipelineOptions {
                    entry_point: stage.clone(),
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}::{ep_name}: MSL: {e}"));
            let options = naga::back::hlsl::Options::default();
            let pipeline = naga::back::hlsl::PipelineOptions { entry_point: stage };
            let mut out = String::new();
            naga::back::hlsl::Writer::new(&mut out, &options, &pipeline)
                .write(&module, &info, None)
                .unwrap_or_else(|e| panic!("{name}::{ep_name}: HLSL: {e}"));
        }
    }
}

/// Every entry point fits the device limits `Context::from_wgpu` demands of a host's device
/// (`gconv::REQUIRED_LIMITS`): storage buffers it uses, workgroup size and workgroup memory.
#[test]
fn every_entry_point_fits_the_limits_gconv_requires() {
    let required =
        |name: &str| gconv::REQUIRED_LIMITS.iter().find(|l| l.0 == name).map(|l| l.1).expect(name);
    let max_storage = required("max_storage_buffers_per_shader_stage");
    let max_invocations = required("max_compute_invocations_per_workgroup");
    let max_x = required("max_compute_workgroup_size_x");
    let max_shared = required("max_compute_workgroup_storage_size");
    for &shader in Shader::ALL {
        let name = shader.file_name();
        let (module, info) = validated(shader);
        for ep in &module.entry_points {
            let ep_name = ep.name.as_str();
            let (module, info) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, ep_name)),
                &Default::default(),
            )
            .expect("overrides");
            let index = module.entry_points.iter().position(|e| e.name == ep_name).expect("ep");
            let uses = info.get_entry_point(index);
            let ep = &module.entry_points[index];
            let (mut storage, mut shared) = (0u64, 0u64);
            for (handle, var) in module.global_variables.iter() {
                if uses[handle].is_empty() {
                    continue;
                }
                match var.space {
                    naga::AddressSpace::Storage { .. } => storage += 1,
                    naga::AddressSpace::WorkGroup => {
                        shared += u64::from(module.types[var.ty].inner.size(module.to_ctx()));
                    }
                    _ => {}
                }
            }
            let [x, y, z] = ep.workgroup_size.map(u64::from);
            assert!(storage <= max_storage, "{name}::{ep_name}: {storage} storage buffers");
            assert!(x * y * z <= max_invocations && x <= max_x, "{name}::{ep_name}: {x}x{y}x{z}");
            assert!(shared <= max_shared, "{name}::{ep_name}: {shared} bytes of workgroup memory");
        }
    }
}
