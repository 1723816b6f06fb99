//! Fuzz-style tests of the parsers that read user files: seeded random mutations and
//! truncations of valid files, thousands of cases, each of which must give an `Err` or a
//! valid result and never panic. A failing case names its seed and shows the input.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use gconv::data::Dataset;
use gconv::nn::{Model, checkpoint, parse_layers};
use rand::Rng;
use rand::rngs::SmallRng;

use super::common::{ctx, rng};

/// One random edit of `bytes`: flip bits, overwrite with extreme values, truncate, cut out or
/// duplicate a run, or insert random bytes. Edits favour the first 64 bytes, where headers are.
fn mutate(rng: &mut SmallRng, bytes: &mut Vec<u8>) {
    let len = bytes.len().max(1);
    let at = |rng: &mut SmallRng| {
        if rng.random_bool(0.6) {
            rng.random_range(0..len.min(64))
        } else {
            rng.random_range(0..len)
        }
    };
    match rng.random_range(0..6) {
        0 => {
            let i = at(rng).min(bytes.len().saturating_sub(1));
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << rng.random_range(0..8);
            }
        }
        1 => {
            let i = at(rng).min(bytes.len().saturating_sub(1));
            let v = [0x00, 0xff, 0x7f, 0x80, b'{', b'"', b'9'][rng.random_range(0..7)];
            if let Some(b) = bytes.get_mut(i) {
                *b = v;
            }
        }
        2 => bytes.truncate(rng.random_range(0..len)),
        3 => {
            let i = at(rng).min(bytes.len());
            let j = (i + rng.random_range(1..16)).min(bytes.len());
            bytes.drain(i..j);
        }
        4 => {
            let i = at(rng).min(bytes.len());
            let j = (i + rng.random_range(1..16)).min(bytes.len());
            let run = bytes[i..j].to_vec();
            bytes.splice(i..i, run);
        }
        _ => {
            let i = at(rng).min(bytes.len());
            let extra: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
            bytes.splice(i..i, extra);
        }
    }
}

/// Runs `check` on `cases` mutants of `base` (1 to 3 edits each); a panic fails the test with
/// the case's seed and its first bytes.
fn fuzz(name: &str, base: &[u8], cases: u64, mut check: impl FnMut(&[u8])) {
    for case in 0..cases {
        let mut r = rng(case);
        let mut bytes = base.to_vec();
        for _ in 0..r.random_range(1..=3) {
            mutate(&mut r, &mut bytes);
        }
        if catch_unwind(AssertUnwindSafe(|| check(&bytes))).is_err() {
            let head: Vec<u8> = bytes.iter().copied().take(96).collect();
            panic!("{name}: case {case} panicked; its first bytes: {head:?}");
        }
    }
}

fn idx(magic: u32, sizes: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for s in sizes {
        out.extend(s.to_be_bytes());
    }
    out.extend(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn mutated_idx_files_are_refused_or_read_whole() {
    let (n, rows, cols) = (12u32, 7u32, 5u32);
    let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let images = idx(0x0803, &[n, rows, cols], &pixels);
    let label_file = idx(0x0801, &[n], &labels);
    let (ip, lp) = (Path::new("images.idx"), Path::new("labels.idx"));
    Dataset::from_idx_bytes(ip, images.clone(), lp, label_file.clone()).expect("the valid files");
    let valid = |d: &Dataset| {
        assert!(d.rows > 0 && d.cols > 0, "a dataset of {}x{} images", d.rows, d.cols);
        assert_eq!(d.pixels.len(), d.len() * d.rows * d.cols);
        assert!(d.labels.iter().all(|&l| l < 10));
        if !d.is_empty() {
            let (x, y) = d.batch(&[0], [1, d.rows, d.cols]);
            assert_eq!((x.len(), y.len()), (d.rows * d.cols, 1));
        }
    };
    let mut accepted = 0;
    fuzz("images", &images, 3000, |bytes| {
        if let Ok(d) = Dataset::from_idx_bytes(ip, bytes.to_vec(), lp, label_file.clone()) {
            valid(&d);
            accepted += 1;
        }
    });
    fuzz("labels", &label_file, 2000, |bytes| {
        if let Ok(d) = Dataset::from_idx_bytes(ip, images.clone(), lp, bytes.to_vec()) {
            valid(&d);
        }
    });
    fuzz("gzipped images", &gzip(&images), 1500, |bytes| {
        if let Ok(d) = Dataset::from_idx_bytes(ip, bytes.to_vec(), lp, label_file.clone()) {
            valid(&d);
        }
    });
    // Pixel edits keep a file valid: the fuzzing reached past the header.
    assert!(accepted > 100, "only {accepted} mutants were valid files");
}

#[test]
fn mutated_checkpoints_are_refused_or_load_whole() {
    let graph = parse_layers("conv(1,4,k=3) bn relu maxpool(2) flatten linear(10)", &[1, 12, 12])
        .expect("spec");
    let mut model = Model::from_graph(ctx(), "fuzz", graph, 1).expect("model");
    let state = model.state_dict().expect("state");
    let path = std::env::temp_dir().join(format!("gconv-fuzz-{}.safetensors", std::process::id()));
    checkpoint::save(&path, &state, &[("model", "fuzz"), ("input", "1x12x12")]).expect("save");
    let base = std::fs::read(&path).expect("read");
    let _ = std::fs::remove_file(&path);
    let name = Path::new("fuzz.safetensors");
    let mut loaded = 0;
    fuzz("checkpoint", &base, 4000, |bytes| {
        if let Ok((tensors, _)) = checkpoint::from_bytes(bytes, name) {
            for (n, shape, values) in &tensors {
                assert_eq!(values.len(), shape.iter().product::<usize>(), "{n} {shape:?}");
            }
            // Loading checks names and shapes, whatever the file holds.
            if model.load_state_dict(&tensors).is_ok() {
                loaded += 1;
            }
        }
    });
    model.load_state_dict(&state).expect("the original loads");
    assert!(loaded > 10, "only {loaded} mutants loaded: the fuzzing never reached the data");
}

#[test]
fn mutated_layer_specs_are_refused_or_build_a_graph() {
    let specs = [
        "conv(1,16,k=3,p=1) bn relu res(conv(16,16,k=3,p=1) bn relu conv(16,16,k=3,p=1) bn) relu \
         maxpool(2) cat(conv(16,16,k=1) relu6 | conv(16,8,k=3,p=1) relu | ) \
         res(conv(40,32,k=3,s=2,p=1) bn relu, shortcut=conv(40,32,k=1,s=2) bn) gap flatten \
         dropout(0.2) linear(10)",
        "conv(1,8,k=3x5,p=same) conv(8,8,k=3,s=2,p=1) convt(8,4,k=4,s=2,p=1,op=1,d=1) maxpool(k=3,s=2,ceil=true) \
         avgpool(2,cip=false) adaptiveavgpool(3) flatten fc(10)  # a comment\n",
        "conv1d(1,4,k=3) relu -> maxpool1d(2), flatten, linear(76,5,bias=false)",
    ];
    let alphabet = b"()|,=x#.- \n0123456789aeklnoprstv";
    let mut built = 0;
    for (s, spec) in specs.iter().enumerate() {
        let input: &[usize] = if spec.starts_with("conv1d") { &[1, 40] } else { &[1, 28, 28] };
        parse_layers(spec, input).expect("the valid spec");
        let base = spec.as_bytes().to_vec();
        fuzz(&format!("spec {s}"), &base, 1500, |bytes| {
            // Specs are text: keep the mutant UTF-8 by mapping bytes into the spec's alphabet.
            let text: String = bytes
                .iter()
                .map(|&b| if b.is_ascii_graphic() || b == b' ' { b } else { alphabet[b as usize % alphabet.len()] } as char)
                .collect();
            match parse_layers(&text, input) {
                Ok(graph) => {
                    graph.shapes(2).expect("a graph the parser accepted has shapes");
                    built += 1;
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        });
    }
    assert!(built > 100, "only {built} mutants built graphs");
}

#[test]
fn mutated_onnx_files_are_refused_or_imported_whole() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("onnx");
    let mut imported = 0;
    for name in ["fire.onnx", "inverted_residual.onnx"] {
        let base = std::fs::read(dir.join(name)).expect("model");
        gconv::onnx::from_bytes(&base, Path::new(name), None).expect("the valid file");
        fuzz(name, &base, 1500, |bytes| {
            if let Ok(m) = gconv::onnx::from_bytes(bytes, Path::new(name), None) {
                m.graph.shapes(2).expect("an imported graph has shapes");
                for (n, shape, values) in &m.state {
                    assert_eq!(values.len(), shape.iter().product::<usize>().max(1), "{n}");
                }
                imported += 1;
            }
        });
    }
    assert!(imported > 100, "only {imported} mutants imported");
}
