//! Three ONNX operators that facegate evaluates with its own single-pass kernels inside tract.
//!
//! Measured with `examples/profile_ops.rs` (tract-onnx 0.23.9, x86-64, one thread):
//! - **PRelu**: tract-onnx expands it into three whole-tensor ops (`x · slope`, `0 > x`, a select),
//!   each writing a new tensor. In MobileFaceNet those three took 60 % of the network's time
//!   (20 of 33 ms), more than every convolution together.
//! - **Softmax over a non-last axis** (MTCNN's face/not-face over channel 1 of `[1, 2, h, w]`):
//!   tract walks it position by position through ndarray views. It took 15 of the 34 ms of the
//!   largest P-Net pyramid level.
//! - **MaxPool** (2-D, NCHW): tract's pooling visits every window element by element; it was a
//!   quarter of R-Net's and O-Net's time (3.2 of 13 ms for 100 R-Net crops). Here the rows of a
//!   window are reduced first over whole rows (vectorised), then across the window's columns.
//!
//! All replacements compute exactly what the ONNX operator defines. PRelu and MaxPool give the
//! same bits as tract's operators; Softmax uses the standard-library `exp`, so its outputs may
//! differ from tract's vectorised approximation in the last bits. Anything outside the cases
//! handled here (a slope that is not a constant or varies over several axes, a pool with
//! dilation, `auto_pad` or an `Indices` output, Softmax before opset 13, a non-f32 tensor) falls
//! back to tract's own operators.

use std::sync::{Arc, OnceLock};

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::cnn::{HirMaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_hir::ops::nn::DataFormat;
use tract_onnx::tract_hir::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_hir::tract_core::ops::logic::{comp_gt, Iff};
use tract_onnx::Onnx;

/// tract's ONNX front end with facegate's PRelu, Softmax and MaxPool kernels registered.
pub fn onnx() -> Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("PRelu", prelu_builder);
    onnx.op_register.insert("Softmax", softmax_builder);
    onnx.op_register.insert("MaxPool", max_pool_builder);
    onnx
}

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// tract-onnx's own builder for `op`, for the cases facegate's kernels do not cover.
fn tract_builder(op: &str) -> TractResult<fn(&ParsingContext, &NodeProto) -> Built> {
    static TRACT: OnceLock<Onnx> = OnceLock::new();
    let onnx = TRACT.get_or_init(tract_onnx::onnx);
    onnx.op_register
        .0
        .get(op)
        .copied()
        .with_context(|| format!("tract-onnx has no {op}"))
}

fn prelu_builder(_ctx: &ParsingContext, _node: &NodeProto) -> Built {
    Ok((expand(PreluExpansion), vec![]))
}

fn softmax_builder(ctx: &ParsingContext, node: &NodeProto) -> Built {
    let axis: Option<isize> = node.get_attr_opt("axis")?;
    if ctx.onnx_operator_set_version < 13 {
        // Before opset 13 Softmax flattens to 2-D first: left to tract.
        return tract_builder("Softmax")?(ctx, node);
    }
    let axis = axis.unwrap_or(-1);
    Ok((expand(SoftmaxExpansion { axis }), vec![]))
}

/// Shape inference of an element-wise operator: `arity` inputs, one output of the first input's
/// type and shape.
fn like_first_input<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
    arity: usize,
) -> InferenceResult {
    check_input_arity(inputs, arity)?;
    check_output_arity(outputs, 1)?;
    s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

/// ONNX PRelu as parsed: picks facegate's kernel when the slope is a constant along one axis.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct PreluExpansion;

impl Expansion for PreluExpansion {
    fn name(&self) -> StaticName {
        "PRelu".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        like_first_input(s, inputs, outputs, 2)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let (x, slope) = (inputs[0], inputs[1]);
        let x_fact = model.outlet_fact(x)?.clone();
        let slope_value = model.outlet_fact(slope)?.konst.clone();
        if x_fact.datum_type == f32::datum_type() {
            if let Some(slope_value) = slope_value {
                if let Some(axis) = slope_axis(&x_fact.shape, slope_value.shape()) {
                    let slope = slope_value.cast_to::<f32>()?.into_owned();
                    let slope = slope.clone().into_shape(&[slope.len()])?;
                    let op = ChannelPrelu {
                        axis,
                        slope: Arc::new(slope),
                    };
                    return model.wire_node(name, op, &[x]);
                }
            }
        }
        // Anything else: the expansion tract-onnx itself uses.
        let rank = x_fact.rank();
        let mut slope = slope;
        while model.outlet_fact(slope)?.rank() < rank {
            let r = model.outlet_fact(slope)?.rank();
            slope = model.wire_node(format!("{name}.add-axis-{r}"), AxisOp::Add(0), &[slope])?[0];
        }
        let zero = tensor0(0.0f32)
            .cast_to_dt(x_fact.datum_type)?
            .into_owned()
            .broadcast_into_rank(rank)?;
        let product = model.wire_node(
            format!("{name}.mul"),
            tract_onnx::tract_hir::ops::math::mul(),
            &[x, slope],
        )?[0];
        let zero = model.add_const(format!("{name}.zero"), zero)?;
        let negative = model.wire_node(
            format!("{name}.test"),
            TypedBinOp(comp_gt(), None),
            &[zero, x],
        )?[0];
        model.wire_node(format!("{name}.iff"), Iff, &[negative, product, x])
    }
}

/// Where a PRelu slope of shape `slope` varies over an input of shape `x` (numpy broadcasting):
/// `Some(None)` for one slope for everything, `Some(Some(axis))` for one slope per index of
/// `axis`, `None` when it varies over several axes or the sizes do not line up.
fn slope_axis(x: &ShapeFact, slope: &[usize]) -> Option<Option<usize>> {
    if slope.len() > x.rank() {
        return None;
    }
    let offset = x.rank() - slope.len();
    let mut varying = slope
        .iter()
        .enumerate()
        .filter(|(_, &d)| d != 1)
        .map(|(i, &d)| (i + offset, d));
    match (varying.next(), varying.next()) {
        (None, _) => Some(None),
        (Some((axis, d)), None) => (x[axis].to_usize().ok()? == d).then_some(Some(axis)),
        _ => None,
    }
}

/// `x < 0 ? slope[c] · x : x` where `c` is the index along `axis`, in place, in one pass.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ChannelPrelu {
    /// The axis the slope runs along; `None` for a single slope.
    axis: Option<usize>,
    slope: Arc<Tensor>,
}

impl Op for ChannelPrelu {
    fn name(&self) -> StaticName {
        "facegate.ChannelPrelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ChannelPrelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        // The plan has already released its own copy when this node is the last reader, so this
        // takes the buffer without copying it.
        let mut x = input.into_tensor();
        let shape = x.shape().to_vec();
        let slope = self.slope.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut view = x.try_as_plain_ram_mut()?;
        let data = view.as_slice_mut::<f32>()?;
        match self.axis {
            None => leaky(data, slope[0]),
            Some(axis) => {
                let inner: usize = shape[axis + 1..].iter().product();
                if inner > 0 {
                    for (i, run) in data.chunks_mut(inner).enumerate() {
                        leaky(run, slope[i % slope.len()]);
                    }
                }
            }
        }
        Ok(tvec!(x.into_tvalue()))
    }
}

/// The same select tract's expansion makes (`0 > x`), so -0.0 and NaN pass through unchanged.
#[inline]
fn leaky(run: &mut [f32], slope: f32) {
    for v in run {
        *v = if 0.0 > *v { *v * slope } else { *v };
    }
}

impl TypedOp for ChannelPrelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// ONNX Softmax (opset 13: normalised along one axis), facegate's kernel for f32.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct SoftmaxExpansion {
    axis: isize,
}

impl Expansion for SoftmaxExpansion {
    fn name(&self) -> StaticName {
        "Softmax".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        like_first_input(s, inputs, outputs, 1)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        if fact.datum_type != f32::datum_type() {
            return tract_onnx::tract_hir::ops::nn::Softmax::new(self.axis)
                .wire(name, model, inputs);
        }
        let rank = fact.rank() as isize;
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        ensure!(
            (0..rank).contains(&axis),
            "Softmax axis {} out of rank {rank}",
            self.axis
        );
        model.wire_node(
            name,
            AxisSoftmax {
                axis: axis as usize,
            },
            inputs,
        )
    }
}

/// Softmax of an f32 tensor along `axis`, in place, vectorised over the positions after it.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct AxisSoftmax {
    axis: usize,
}

impl Op for AxisSoftmax {
    fn name(&self) -> StaticName {
        "facegate.AxisSoftmax".into()
    }

    op_as_typed_op!();
}

impl EvalOp for AxisSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut x = args_1!(inputs).into_tensor();
        let shape = x.shape().to_vec();
        let classes = shape[self.axis];
        let inner: usize = shape[self.axis + 1..].iter().product();
        let mut view = x.try_as_plain_ram_mut()?;
        let data = view.as_slice_mut::<f32>()?;
        if classes > 0 && inner > 0 {
            let mut max = vec![0f32; inner];
            let mut sum = vec![0f32; inner];
            for block in data.chunks_mut(classes * inner) {
                softmax_block(block, inner, &mut max, &mut sum);
            }
        }
        Ok(tvec!(x.into_tvalue()))
    }
}

/// One `[classes, inner]` block: softmax over the classes at every inner position.
fn softmax_block(block: &mut [f32], inner: usize, max: &mut [f32], sum: &mut [f32]) {
    max.copy_from_slice(&block[..inner]);
    for row in block.chunks_exact(inner).skip(1) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = m.max(v);
        }
    }
    sum.fill(0.0);
    for row in block.chunks_exact_mut(inner) {
        for ((v, &m), s) in row.iter_mut().zip(max.iter()).zip(sum.iter_mut()) {
            *v = (*v - m).exp();
            *s += *v;
        }
    }
    for row in block.chunks_exact_mut(inner) {
        for (v, &s) in row.iter_mut().zip(sum.iter()) {
            *v /= s;
        }
    }
}

impl TypedOp for AxisSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.clone())))
    }

    as_op!();
}

fn max_pool_builder(ctx: &ParsingContext, node: &NodeProto) -> Built {
    match MaxPoolExpansion::from_node(node)? {
        Some(op) => Ok((expand(op), vec![])),
        None => tract_builder("MaxPool")?(ctx, node),
    }
}

/// ONNX MaxPool over the two spatial axes of NCHW: facegate's kernel for f32, tract's otherwise.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct MaxPoolExpansion {
    pool: MaxPool2d,
    /// The same pooling as tract builds it: its shape rules, and the kernel for other types.
    tract: HirMaxPool,
}

impl MaxPoolExpansion {
    /// `None` for what only tract covers: an `Indices` output, dilation, `auto_pad`, not 2-D.
    fn from_node(node: &NodeProto) -> TractResult<Option<Self>> {
        let kernel: TVec<usize> = node.get_attr_tvec("kernel_shape")?;
        let strides: TVec<usize> = node.get_attr_opt_tvec("strides")?.unwrap_or(tvec![1, 1]);
        let pads: TVec<usize> = node.get_attr_opt_tvec("pads")?.unwrap_or(tvec![0; 4]);
        let dilations: TVec<usize> = node.get_attr_opt_tvec("dilations")?.unwrap_or(tvec![1, 1]);
        let auto_pad: Option<String> = node.get_attr_opt("auto_pad")?;
        let ceil = node.get_attr_opt::<i64>("ceil_mode")?.unwrap_or(0) == 1;
        let plain = node.output.len() == 1
            && kernel.len() == 2
            && strides.len() == 2
            && pads.len() == 4
            && dilations.iter().all(|&d| d == 1)
            && auto_pad.as_deref().is_none_or(|p| p == "NOTSET");
        if !plain {
            return Ok(None);
        }
        let pool = MaxPool2d {
            kernel: [kernel[0], kernel[1]],
            stride: [strides[0], strides[1]],
            before: [pads[0], pads[1]],
            after: [pads[2], pads[3]],
            ceil,
        };
        let padding = PaddingSpec::ExplicitOnnxPool(pads[..2].into(), pads[2..].into(), ceil);
        let spec = PoolSpec::new(DataFormat::NCHW, kernel, padding, None, Some(strides), 0, 0);
        Ok(Some(Self {
            pool,
            tract: HirMaxPool::new(spec, None),
        }))
    }
}

impl Expansion for MaxPoolExpansion {
    fn name(&self) -> StaticName {
        "MaxPool".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.tract.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?;
        let spatial_known =
            fact.rank() == 4 && fact.shape[2..].iter().all(|d| d.as_i64().is_some());
        if fact.datum_type != f32::datum_type() || !spatial_known {
            return self.tract.wire(name, model, inputs);
        }
        model.wire_node(name, self.pool.clone(), inputs)
    }
}

/// Max pooling of NCHW f32 over H and W; padding counts as −∞, ONNX `ceil_mode` rules.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct MaxPool2d {
    kernel: [usize; 2],
    stride: [usize; 2],
    before: [usize; 2],
    after: [usize; 2],
    ceil: bool,
}

impl MaxPool2d {
    /// Output length along spatial axis `a` (0 = H, 1 = W) for an input of length `input`,
    /// as ONNX defines it (with ceil mode, no window may start inside the trailing padding).
    fn output_len(&self, a: usize, input: usize) -> usize {
        let span = (input + self.before[a] + self.after[a]).saturating_sub(self.kernel[a]);
        let stride = self.stride[a];
        let mut out = if self.ceil {
            span.div_ceil(stride)
        } else {
            span / stride
        } + 1;
        if self.ceil && (out - 1) * stride >= input + self.before[a] {
            out -= 1;
        }
        out
    }

    /// Input rows (or columns) `[from, to)` under output index `o` along axis `a`.
    fn window(&self, a: usize, o: usize, input: usize) -> (usize, usize) {
        let start = (o * self.stride[a]) as isize - self.before[a] as isize;
        let end = start + self.kernel[a] as isize;
        (
            start.clamp(0, input as isize) as usize,
            end.clamp(0, input as isize) as usize,
        )
    }

    /// The input span `[from, to)` of every output index along axis `a`.
    fn windows(&self, a: usize, input: usize) -> Vec<(usize, usize)> {
        (0..self.output_len(a, input))
            .map(|o| self.window(a, o, input))
            .collect()
    }

    /// One plane: the rows of each window reduced over whole rows (vectorised) into `rows`,
    /// then `rows` pooled across the window's columns.
    fn pool_plane(
        &self,
        plane: &[f32],
        w: usize,
        windows: &Windows,
        out: &mut [f32],
        rows: &mut [f32],
    ) {
        let ow = windows.cols.len();
        for (out_row, &(y0, y1)) in out.chunks_exact_mut(ow).zip(&windows.rows) {
            if y0 == y1 {
                out_row.fill(f32::NEG_INFINITY);
                continue;
            }
            rows.copy_from_slice(&plane[y0 * w..(y0 + 1) * w]);
            for y in y0 + 1..y1 {
                for (m, &v) in rows.iter_mut().zip(&plane[y * w..(y + 1) * w]) {
                    *m = max(*m, v);
                }
            }
            // Windows wholly inside the row, unpadded on the left: MTCNN's 2×2 and 3×3 pools,
            // stride 2, with no per-window bookkeeping.
            let inside = if self.before[1] == 0 && self.stride[1] == 2 && w >= self.kernel[1] {
                ((w - self.kernel[1]) / 2 + 1).min(ow)
            } else {
                0
            };
            let (fast, rest) = out_row.split_at_mut(inside);
            match self.kernel[1] {
                2 => {
                    for (o, pair) in fast.iter_mut().zip(rows.chunks_exact(2)) {
                        *o = max(pair[0], pair[1]);
                    }
                }
                3 => {
                    for (i, o) in fast.iter_mut().enumerate() {
                        *o = max(max(rows[2 * i], rows[2 * i + 1]), rows[2 * i + 2]);
                    }
                }
                _ => {
                    for (o, &(x0, x1)) in fast.iter_mut().zip(&windows.cols) {
                        *o = rows[x0..x1]
                            .iter()
                            .fold(f32::NEG_INFINITY, |m, &v| max(m, v));
                    }
                }
            }
            for (o, &(x0, x1)) in rest.iter_mut().zip(&windows.cols[inside..]) {
                *o = rows[x0..x1]
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &v| max(m, v));
            }
        }
    }
}

/// The window of every output row and column of a plane, worked out once per call.
struct Windows {
    rows: Vec<(usize, usize)>,
    cols: Vec<(usize, usize)>,
}

/// `max` as one machine instruction (`maxps` / `fmax`); no NaN comes out of these networks.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

impl Op for MaxPool2d {
    fn name(&self) -> StaticName {
        "facegate.MaxPool2d".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(shape.len() == 4, "MaxPool2d wants NCHW, got {shape:?}");
        let (h, w) = (shape[2], shape[3]);
        let (oh, ow) = (self.output_len(0, h), self.output_len(1, w));
        let planes = shape[0] * shape[1];
        let mut output = Tensor::zero::<f32>(&[shape[0], shape[1], oh, ow])?;
        let view = input.try_as_plain_ram()?;
        let data = view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let out = out_view.as_slice_mut::<f32>()?;
        let windows = Windows {
            rows: self.windows(0, h),
            cols: self.windows(1, w),
        };
        let mut rows = vec![0f32; w];
        if planes > 0 && h * w > 0 && oh * ow > 0 {
            for (plane, out_plane) in data.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
                self.pool_plane(plane, w, &windows, out_plane, &mut rows);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool2d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = &inputs[0].shape;
        ensure!(shape.rank() == 4, "MaxPool2d wants NCHW, got {shape:?}");
        let h = self.output_len(0, shape[2].to_usize()?);
        let w = self.output_len(1, shape[3].to_usize()?);
        let dims = [shape[0].clone(), shape[1].clone(), h.to_dim(), w.to_dim()];
        Ok(tvec!(f32::datum_type().fact(dims)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_over_channels_at_every_position() {
        // [classes = 2, inner = 3]: each column sums to one, and equal logits give 1/2.
        let mut block = [1.0, 0.0, 5.0, 1.0, 2.0, -5.0];
        let (mut max, mut sum) = ([0.0; 3], [0.0; 3]);
        softmax_block(&mut block, 3, &mut max, &mut sum);
        assert_eq!(block[0], 0.5);
        assert_eq!(block[3], 0.5);
        let e2 = 1.0 / (1.0 + 2f32.exp());
        assert!((block[1] - e2).abs() < 1e-7, "{}", block[1]);
        assert!((block[1] + block[4] - 1.0).abs() < 1e-7);
        assert!(block[2] > 0.9999 && block[5] < 1e-4);
    }

    #[test]
    fn slope_runs_along_the_axis_it_is_not_one_on() {
        let nchw = ShapeFact::from_dims([1usize, 10, 7, 9].map(|d| d.to_dim()));
        assert_eq!(slope_axis(&nchw, &[10, 1, 1]), Some(Some(1)));
        assert_eq!(slope_axis(&nchw, &[1]), Some(None));
        assert_eq!(slope_axis(&nchw, &[9]), Some(Some(3)));
        assert_eq!(slope_axis(&nchw, &[10, 7, 1]), None);
        assert_eq!(slope_axis(&nchw, &[11, 1, 1]), None);
        let nc = ShapeFact::from_dims([1usize, 128].map(|d| d.to_dim()));
        assert_eq!(slope_axis(&nc, &[128]), Some(Some(1)));
    }

    #[test]
    fn max_pool_follows_onnx_ceil_mode() {
        // MTCNN's pools: 3×3 stride 2, ceil mode, no padding.
        let pool = MaxPool2d {
            kernel: [3, 3],
            stride: [2, 2],
            before: [0, 0],
            after: [0, 0],
            ceil: true,
        };
        // 22 → ceil(19 / 2) + 1 = 11: the last window starts at 20 and holds two columns.
        assert_eq!(pool.output_len(1, 22), 11);
        assert_eq!(pool.window(1, 10, 22), (20, 22));
        let floor = MaxPool2d {
            ceil: false,
            ..pool.clone()
        };
        assert_eq!(floor.output_len(1, 22), 10);
        // A 4×5 plane of 0..20: each output is the bottom-right element of its clipped window.
        let plane: Vec<f32> = (0..20).map(|v| v as f32).collect();
        let (oh, ow) = (pool.output_len(0, 4), pool.output_len(1, 5));
        assert_eq!((oh, ow), (2, 2));
        let mut out = vec![0.0; oh * ow];
        let windows = Windows {
            rows: pool.windows(0, 4),
            cols: pool.windows(1, 5),
        };
        pool.pool_plane(&plane, 5, &windows, &mut out, &mut [0.0; 5]);
        assert_eq!(out, [12.0, 14.0, 17.0, 19.0]);
    }

    #[test]
    fn leaky_keeps_the_sign_of_zero_and_scales_negatives() {
        let mut run = [-2.0, -0.0, 0.0, 3.0];
        leaky(&mut run, 0.25);
        assert_eq!(run, [-0.5, -0.0, 0.0, 3.0]);
        assert!(run[1].is_sign_negative());
    }
}
