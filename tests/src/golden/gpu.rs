//! The golden cases on the GPU: each op and its attributes through gconv's public operators.

use anyhow::{Result, bail};
use gconv::{Context, Tensor, ops};
use serde_json::Value;

use super::{
    Attrs, Case, Outputs, adaptive_size, cross_entropy_attrs, divisor_override, indices,
    spatial_rank, values,
};

/// Runs `case` with gconv's GPU operators: the forward results and, when the case holds
/// `grad_y`, the gradients.
pub fn run_gpu(ctx: &Context, case: &Case) -> Result<Outputs> {
    let op = case.op.as_str();
    let a = Attrs { map: &case.attrs, spatial: spatial_rank(op) };
    let sd = a.spatial - 1;
    let gy = case.opt_gpu(ctx, "grad_y")?;
    let mut out = Outputs::new();
    match op {
        "conv1d" | "conv2d" | "conv3d" => {
            a.only(&["stride", "padding", "dilation", "groups"])?;
            let padding = match a.get("padding") {
                Some(Value::String(s)) if s == "same" => ops::Padding::Same,
                Some(Value::String(s)) if s == "valid" => ops::Padding::Valid,
                Some(Value::String(s)) => bail!("unsupported padding {s:?}"),
                _ => ops::Padding::Explicit(a.dims("padding", Some(0))?.into()),
            };
            let o = ops::ConvOptions {
                stride: a.dims("stride", Some(1))?.into(),
                padding,
                dilation: a.dims("dilation", Some(1))?.into(),
                groups: a.int("groups", 1)? as usize,
            };
            let (x, w, b) =
                (case.gpu(ctx, "x")?, case.gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            out.insert(
                "y",
                values(&[ops::conv1d, ops::conv2d, ops::conv3d][sd](&x, &w, b.as_ref(), &o)?)?,
            );
            if let Some(gy) = &gy {
                let f = [ops::conv1d_backward, ops::conv2d_backward, ops::conv3d_backward][sd];
                insert_conv_grads(&mut out, f(gy, &x, &w, b.is_some(), &o)?)?;
            }
        }
        "conv_transpose1d" | "conv_transpose2d" | "conv_transpose3d" => {
            a.only(&["stride", "padding", "output_padding", "dilation", "groups"])?;
            let o = ops::ConvTransposeOptions {
                stride: a.dims("stride", Some(1))?.into(),
                padding: a.dims("padding", Some(0))?.into(),
                output_padding: a.dims("output_padding", Some(0))?.into(),
                dilation: a.dims("dilation", Some(1))?.into(),
                groups: a.int("groups", 1)? as usize,
            };
            let (x, w, b) =
                (case.gpu(ctx, "x")?, case.gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            let f = [ops::conv_transpose1d, ops::conv_transpose2d, ops::conv_transpose3d][sd];
            out.insert("y", values(&f(&x, &w, b.as_ref(), &o)?)?);
            if let Some(gy) = &gy {
                let f = [
                    ops::conv_transpose1d_backward,
                    ops::conv_transpose2d_backward,
                    ops::conv_transpose3d_backward,
                ][sd];
                insert_conv_grads(&mut out, f(gy, &x, &w, b.is_some(), &o)?)?;
            }
        }
        "max_pool1d" | "max_pool2d" | "max_pool3d" => {
            a.only(&[
                "kernel_size",
                "stride",
                "padding",
                "dilation",
                "ceil_mode",
                "return_indices",
            ])?;
            let k = a.dims("kernel_size", None)?;
            let o = ops::MaxPoolOptions {
                stride: Some(a.dims("stride", None).unwrap_or_else(|_| k.clone()).into()),
                kernel_size: k.into(),
                padding: a.dims("padding", Some(0))?.into(),
                dilation: a.dims("dilation", Some(1))?.into(),
                ceil_mode: a.boolean("ceil_mode", false)?,
            };
            let x = case.gpu(ctx, "x")?;
            let f = [
                ops::max_pool1d_with_indices,
                ops::max_pool2d_with_indices,
                ops::max_pool3d_with_indices,
            ][sd];
            let (y, i) = f(&x, &o)?;
            out.insert("y", values(&y)?);
            out.insert("indices", indices(&i)?);
            if let Some(gy) = &gy {
                let f =
                    [ops::max_pool1d_backward, ops::max_pool2d_backward, ops::max_pool3d_backward]
                        [sd];
                out.insert("grad_x", values(&f(gy, &x, &i, &o)?)?);
            }
        }
        "avg_pool1d" | "avg_pool2d" | "avg_pool3d" => {
            a.only(&[
                "kernel_size",
                "stride",
                "padding",
                "ceil_mode",
                "count_include_pad",
                "divisor_override",
            ])?;
            let k = a.dims("kernel_size", None)?;
            let o = ops::AvgPoolOptions {
                stride: Some(a.dims("stride", None).unwrap_or_else(|_| k.clone()).into()),
                kernel_size: k.into(),
                padding: a.dims("padding", Some(0))?.into(),
                ceil_mode: a.boolean("ceil_mode", false)?,
                count_include_pad: a.boolean("count_include_pad", true)?,
                divisor_override: divisor_override(&a)?,
            };
            let x = case.gpu(ctx, "x")?;
            out.insert(
                "y",
                values(&[ops::avg_pool1d, ops::avg_pool2d, ops::avg_pool3d][sd](&x, &o)?)?,
            );
            if let Some(gy) = &gy {
                let f =
                    [ops::avg_pool1d_backward, ops::avg_pool2d_backward, ops::avg_pool3d_backward]
                        [sd];
                out.insert("grad_x", values(&f(gy, &x, &o)?)?);
            }
        }
        "adaptive_avg_pool1d" | "adaptive_avg_pool2d" | "adaptive_avg_pool3d" => {
            a.only(&["output_size"])?;
            let x = case.gpu(ctx, "x")?;
            let size = adaptive_size(&a, x.shape())?;
            let f =
                [ops::adaptive_avg_pool1d, ops::adaptive_avg_pool2d, ops::adaptive_avg_pool3d][sd];
            out.insert("y", values(&f(&x, size)?)?);
            if let Some(gy) = &gy {
                let f = [
                    ops::adaptive_avg_pool1d_backward,
                    ops::adaptive_avg_pool2d_backward,
                    ops::adaptive_avg_pool3d_backward,
                ][sd];
                out.insert("grad_x", values(&f(gy, &x)?)?);
            }
        }
        "adaptive_max_pool1d" | "adaptive_max_pool2d" | "adaptive_max_pool3d" => {
            a.only(&["output_size", "return_indices"])?;
            let x = case.gpu(ctx, "x")?;
            let size = adaptive_size(&a, x.shape())?;
            let f = [
                ops::adaptive_max_pool1d_with_indices,
                ops::adaptive_max_pool2d_with_indices,
                ops::adaptive_max_pool3d_with_indices,
            ][sd];
            let (y, i) = f(&x, size)?;
            out.insert("y", values(&y)?);
            out.insert("indices", indices(&i)?);
            if let Some(gy) = &gy {
                let f = [
                    ops::adaptive_max_pool1d_backward,
                    ops::adaptive_max_pool2d_backward,
                    ops::adaptive_max_pool3d_backward,
                ][sd];
                out.insert("grad_x", values(&f(gy, &x, &i)?)?);
            }
        }
        "linear" => {
            a.only(&[])?;
            let (x, w, b) =
                (case.gpu(ctx, "x")?, case.gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            out.insert("y", values(&ops::linear(&x, &w, b.as_ref())?)?);
            if let Some(gy) = &gy {
                let g = ops::linear_backward(gy, &x, &w, b.is_some())?;
                insert_conv_grads(
                    &mut out,
                    ops::ConvGrads {
                        grad_input: g.grad_input,
                        grad_weight: g.grad_weight,
                        grad_bias: g.grad_bias,
                    },
                )?;
            }
        }
        "matmul" => {
            a.only(&[])?;
            let (ma, mb) = (case.gpu(ctx, "a")?, case.gpu(ctx, "b")?);
            out.insert("y", values(&ops::matmul(&ma, &mb)?)?);
            if let Some(gy) = &gy {
                let (ga, gb) = ops::matmul_backward(gy, &ma, &mb)?;
                out.insert("grad_a", values(&ga)?);
                out.insert("grad_b", values(&gb)?);
            }
        }
        "relu" => {
            a.only(&[])?;
            let x = case.gpu(ctx, "x")?;
            out.insert("y", values(&ops::relu(&x)?)?);
            if let Some(gy) = &gy {
                out.insert("grad_x", values(&ops::relu_backward(gy, &x)?)?);
            }
        }
        "softmax" | "log_softmax" => {
            a.only(&["dim"])?;
            let dim = a.int("dim", -1)? as isize;
            let x = case.gpu(ctx, "x")?;
            let soft = op == "softmax";
            let y = if soft { ops::softmax(&x, dim)? } else { ops::log_softmax(&x, dim)? };
            out.insert("y", values(&y)?);
            if let Some(gy) = &gy {
                let gx = if soft {
                    ops::softmax_backward(gy, &y, dim)?
                } else {
                    ops::log_softmax_backward(gy, &y, dim)?
                };
                out.insert("grad_x", values(&gx)?);
            }
        }
        "cross_entropy" => {
            let (reduction, ignore_index) = cross_entropy_attrs(&a)?;
            let (ts, t) = case.i64("target")?;
            let t32: Vec<i32> = t.iter().map(|&v| i32::try_from(v)).collect::<Result<_, _>>()?;
            let target = Tensor::from_slice_i32(ctx, &t32, ts)?;
            let o = ops::CrossEntropyOptions {
                reduction,
                ignore_index: ignore_index as i32,
                ..Default::default()
            };
            let x = case.gpu(ctx, "x")?;
            out.insert("y", values(&ops::cross_entropy(&x, &target, &o)?)?);
            if let Some(gy) = &gy {
                out.insert("grad_x", values(&ops::cross_entropy_backward(gy, &x, &target, &o)?)?);
            }
        }
        "batch_norm" => {
            a.only(&["training", "eps", "momentum"])?;
            let o = ops::BatchNormOptions {
                training: a.boolean("training", false)?,
                momentum: a.float("momentum", 0.1)?,
                eps: a.float("eps", 1e-5)?,
            };
            let x = case.gpu(ctx, "x")?;
            let rm = case.opt_gpu(ctx, "running_mean")?;
            let rv = case.opt_gpu(ctx, "running_var")?;
            let (w, b) = (case.opt_gpu(ctx, "weight")?, case.opt_gpu(ctx, "bias")?);
            let (y, stats) = ops::batch_norm_with_stats(
                &x,
                rm.as_ref(),
                rv.as_ref(),
                w.as_ref(),
                b.as_ref(),
                &o,
            )?;
            out.insert("y", values(&y)?);
            if o.training
                && let (Some(rm), Some(rv)) = (rm, rv)
            {
                out.insert("new_running_mean", values(&rm)?);
                out.insert("new_running_var", values(&rv)?);
            }
            if let Some(gy) = &gy {
                let g = ops::batch_norm_backward(gy, &x, &stats, w.as_ref(), b.is_some(), &o)?;
                out.insert("grad_x", values(&g.grad_input)?);
                if let Some(gw) = &g.grad_weight {
                    out.insert("grad_weight", values(gw)?);
                }
                if let Some(gb) = &g.grad_bias {
                    out.insert("grad_bias", values(gb)?);
                }
            }
        }
        other => bail!("unsupported op `{other}`"),
    }
    Ok(out)
}

fn insert_conv_grads(out: &mut Outputs, g: ops::ConvGrads) -> Result<()> {
    out.insert("grad_x", values(&g.grad_input)?);
    out.insert("grad_weight", values(&g.grad_weight)?);
    if let Some(gb) = &g.grad_bias {
        out.insert("grad_bias", values(gb)?);
    }
    Ok(())
}
