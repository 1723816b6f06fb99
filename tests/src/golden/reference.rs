//! The golden cases on the CPU reference (gconv-ref), from the same attributes.

use anyhow::{Result, bail};
use gconv::ops;
use gconv_ref::Array;
use serde_json::Value;

use super::{
    Attrs, Case, Output, Outputs, adaptive_size, arr, cross_entropy_attrs, divisor_override,
    spatial_rank,
};

/// Runs `case` with the CPU reference: forward results and, with `grad_y`, gradients.
pub fn run_ref(case: &Case) -> Result<Outputs> {
    let op = case.op.as_str();
    let a = Attrs { map: &case.attrs, spatial: spatial_rank(op) };
    let gy = case.opt_array("grad_y")?;
    let mut out = Outputs::new();
    match op {
        "conv1d" | "conv2d" | "conv3d" => {
            let (x, w, b) = (case.array("x")?, case.array("weight")?, case.opt_array("bias")?);
            let dilation = a.dims("dilation", Some(1))?;
            let spec = match a.get("padding") {
                Some(Value::String(s)) if s == "same" => gconv_ref::PaddingSpec::Same,
                Some(Value::String(s)) if s == "valid" => gconv_ref::PaddingSpec::Valid,
                _ => gconv_ref::PaddingSpec::Explicit(a.dims("padding", Some(0))?),
            };
            let attrs = gconv_ref::ConvAttrs {
                stride: a.dims("stride", Some(1))?,
                padding: gconv_ref::resolve_padding(&spec, &w.shape[2..], &dilation),
                dilation,
                groups: a.int("groups", 1)? as usize,
            };
            out.insert("y", arr(gconv_ref::conv_forward(&x, &w, b.as_ref(), &attrs)));
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::conv_backward(&x, &w, gy, &attrs);
                insert_ref_grads(&mut out, gx, gw, b.is_some().then_some(gb));
            }
        }
        "conv_transpose1d" | "conv_transpose2d" | "conv_transpose3d" => {
            let (x, w, b) = (case.array("x")?, case.array("weight")?, case.opt_array("bias")?);
            let attrs = gconv_ref::ConvTransposeAttrs {
                stride: a.dims("stride", Some(1))?,
                padding: a.dims("padding", Some(0))?,
                output_padding: a.dims("output_padding", Some(0))?,
                dilation: a.dims("dilation", Some(1))?,
                groups: a.int("groups", 1)? as usize,
            };
            out.insert("y", arr(gconv_ref::conv_transpose_forward(&x, &w, b.as_ref(), &attrs)));
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::conv_transpose_backward(&x, &w, gy, &attrs);
                insert_ref_grads(&mut out, gx, gw, b.is_some().then_some(gb));
            }
        }
        "max_pool1d" | "max_pool2d" | "max_pool3d" | "avg_pool1d" | "avg_pool2d" | "avg_pool3d" => {
            let k = a.dims("kernel_size", None)?;
            let attrs = gconv_ref::PoolAttrs {
                stride: a.dims("stride", None).unwrap_or_else(|_| k.clone()),
                kernel_size: k,
                padding: a.dims("padding", Some(0))?,
                dilation: a.dims("dilation", Some(1))?,
                ceil_mode: a.boolean("ceil_mode", false)?,
                count_include_pad: a.boolean("count_include_pad", true)?,
                divisor_override: divisor_override(&a)?,
            };
            let x = case.array("x")?;
            if op.starts_with("max") {
                let (y, i) = gconv_ref::max_pool_forward(&x, &attrs);
                if let Some(gy) = &gy {
                    out.insert("grad_x", arr(gconv_ref::max_pool_backward(&x, gy, &i, &attrs)));
                }
                out.insert("indices", Output::Indices(y.shape.clone(), i));
                out.insert("y", arr(y));
            } else {
                out.insert("y", arr(gconv_ref::avg_pool_forward(&x, &attrs)));
                if let Some(gy) = &gy {
                    out.insert("grad_x", arr(gconv_ref::avg_pool_backward(&x, gy, &attrs)));
                }
            }
        }
        "adaptive_avg_pool1d" | "adaptive_avg_pool2d" | "adaptive_avg_pool3d" => {
            let x = case.array("x")?;
            let size = adaptive_size(&a, &x.shape)?;
            out.insert("y", arr(gconv_ref::adaptive_avg_pool_forward(&x, &size)));
            if let Some(gy) = &gy {
                out.insert("grad_x", arr(gconv_ref::adaptive_avg_pool_backward(&x, gy)));
            }
        }
        "adaptive_max_pool1d" | "adaptive_max_pool2d" | "adaptive_max_pool3d" => {
            let x = case.array("x")?;
            let size = adaptive_size(&a, &x.shape)?;
            let (y, i) = gconv_ref::adaptive_max_pool_forward(&x, &size);
            if let Some(gy) = &gy {
                out.insert("grad_x", arr(gconv_ref::adaptive_max_pool_backward(&x, gy, &i)));
            }
            out.insert("indices", Output::Indices(y.shape.clone(), i));
            out.insert("y", arr(y));
        }
        "linear" => {
            let (x, w, b) = (case.array("x")?, case.array("weight")?, case.opt_array("bias")?);
            out.insert("y", arr(gconv_ref::linear(&x, &w, b.as_ref())));
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::linear_backward(&x, &w, gy);
                insert_ref_grads(&mut out, gx, gw, b.is_some().then_some(gb));
            }
        }
        "matmul" => {
            let (ma, mb) = (case.array("a")?, case.array("b")?);
            out.insert("y", arr(gconv_ref::matmul(&ma, &mb)));
            if let Some(gy) = &gy {
                let (ga, gb) = gconv_ref::matmul_backward(&ma, &mb, gy);
                out.insert("grad_a", arr(ga));
                out.insert("grad_b", arr(gb));
            }
        }
        "relu" => {
            let x = case.array("x")?;
            out.insert("y", arr(gconv_ref::relu(&x)));
            if let Some(gy) = &gy {
                out.insert("grad_x", arr(gconv_ref::relu_backward(&x, gy)));
            }
        }
        "softmax" | "log_softmax" => {
            let x = case.array("x")?;
            let dim = a.int("dim", -1)?;
            let dim = if dim < 0 { dim + x.shape.len() as i64 } else { dim } as usize;
            let soft = op == "softmax";
            let y =
                if soft { gconv_ref::softmax(&x, dim) } else { gconv_ref::log_softmax(&x, dim) };
            if let Some(gy) = &gy {
                let gx = if soft {
                    gconv_ref::softmax_backward(&y, gy, dim)
                } else {
                    gconv_ref::log_softmax_backward(&y, gy, dim)
                };
                out.insert("grad_x", arr(gx));
            }
            out.insert("y", arr(y));
        }
        "cross_entropy" => {
            let (reduction, ignore_index) = cross_entropy_attrs(&a)?;
            let (_, t) = case.i64("target")?;
            let x = case.array("x")?;
            let (losses, mean) = gconv_ref::cross_entropy(&x, t, ignore_index);
            let (y, name) = match reduction {
                ops::Reduction::Mean => (vec![mean], "mean"),
                ops::Reduction::Sum => (vec![losses.iter().sum()], "sum"),
                ops::Reduction::None => (losses, "none"),
            };
            out.insert("y", Output::Values(vec![y.len()], y));
            if let Some(gy) = &gy {
                out.insert(
                    "grad_x",
                    arr(gconv_ref::cross_entropy_backward(&x, t, ignore_index, &gy.data, name)),
                );
            }
        }
        "batch_norm" => {
            let training = a.boolean("training", false)?;
            let eps = a.float("eps", 1e-5)?;
            let vec_of =
                |n: &str| -> Result<Option<Vec<f64>>> { Ok(case.opt_array(n)?.map(|a| a.data)) };
            let (rm, rv) = (vec_of("running_mean")?, vec_of("running_var")?);
            let (w, b) = (vec_of("weight")?, vec_of("bias")?);
            let x = case.array("x")?;
            let r = gconv_ref::batch_norm_forward(
                &x,
                rm.as_deref(),
                rv.as_deref(),
                w.as_deref(),
                b.as_deref(),
                training,
                a.float("momentum", 0.1)?,
                eps,
            );
            out.insert("y", arr(r.y));
            if training && let (Some(m), Some(v)) = (r.running_mean, r.running_var) {
                out.insert("new_running_mean", Output::Values(vec![m.len()], m));
                out.insert("new_running_var", Output::Values(vec![v.len()], v));
            }
            if let Some(gy) = &gy {
                let (gx, gw, gb) = gconv_ref::batch_norm_backward(
                    &x,
                    gy,
                    rm.as_deref(),
                    rv.as_deref(),
                    w.as_deref(),
                    training,
                    eps,
                );
                out.insert("grad_x", arr(gx));
                if w.is_some() {
                    out.insert("grad_weight", Output::Values(vec![gw.len()], gw));
                }
                if b.is_some() {
                    out.insert("grad_bias", Output::Values(vec![gb.len()], gb));
                }
            }
        }
        other => bail!("unsupported op `{other}`"),
    }
    Ok(out)
}

fn insert_ref_grads(out: &mut Outputs, gx: Array, gw: Array, gb: Option<Vec<f64>>) {
    out.insert("grad_x", arr(gx));
    out.insert("grad_weight", arr(gw));
    if let Some(gb) = gb {
        out.insert("grad_bias", Output::Values(vec![gb.len()], gb));
    }
}
