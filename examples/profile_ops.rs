//! Where tract spends its time inside one model, op by op, and how much arithmetic the model is:
//!
//!   cargo run --release --example profile_ops -- models/mobilefacenet.onnx 1x3x112x112 [RUNS] [--tract-only]
//!
//! The model is loaded as facegate loads it (with the kernels of `facegate::runtime::onnx_ops`);
//! `--tract-only` loads it with tract-onnx's own operators instead, for the comparison.
//!
//! Prints the multiply-accumulates (MACs) of the decluttered graph (tract's own cost model, which
//! counts every convolution and matrix product), then the median time per op kind over RUNS runs
//! of the optimised plan (timing each node around tract's own evaluator) and the ten slowest
//! nodes. The numbers in docs/performance.md come from here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Cost;

fn main() -> TractResult<()> {
    let tract_only = std::env::args().any(|a| a == "--tract-only");
    let mut args = std::env::args().skip(1).filter(|a| a != "--tract-only");
    let usage = "usage: profile_ops MODEL.onnx NxCxHxW [RUNS] [--tract-only]";
    let path = args.next().context(usage)?;
    let shape: Vec<usize> = args
        .next()
        .context(usage)?
        .split('x')
        .map(|d| d.parse::<usize>())
        .collect::<Result<_, _>>()?;
    let runs: usize = args.next().map_or(Ok(50), |r| r.parse())?;

    let fact = InferenceFact::dt_shape(
        f32::datum_type(),
        shape.iter().copied().collect::<TVec<_>>(),
    );
    let onnx = if tract_only {
        tract_onnx::onnx()
    } else {
        facegate::runtime::onnx_ops::onnx()
    };
    let model = onnx.model_for_path(&path)?.with_input_fact(0, fact)?;
    let typed = model.into_typed()?.into_decluttered()?;

    let mut macs: BTreeMap<String, i64> = BTreeMap::new();
    for &id in &typed.eval_order()? {
        let node = &typed.nodes[id];
        let inputs = typed.node_input_facts(id)?;
        for (cost, n) in node.op.cost(&inputs)? {
            if matches!(cost, Cost::FMA(_)) {
                *macs.entry(node.op.name().to_string()).or_default() += n.to_i64()?;
            }
        }
    }
    let total_macs: i64 = macs.values().sum();
    println!(
        "{path} {shape:?}: {:.2} M multiply-accumulates",
        total_macs as f64 / 1e6
    );
    for (op, n) in &macs {
        println!("  {op:<24} {:>10.2} M", *n as f64 / 1e6);
    }

    let plan = typed.into_optimized()?.into_runnable()?;
    let input: Tensor = tract_ndarray::ArrayD::<f32>::from_elem(shape.clone(), 0.1).into();
    let mut per_op: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut per_node: BTreeMap<(usize, String), Vec<Duration>> = BTreeMap::new();
    let mut totals = Vec::new();
    for run in 0..=runs {
        let mut state = plan.spawn()?;
        let mut this_run: BTreeMap<String, Duration> = BTreeMap::new();
        let started = Instant::now();
        state.run_plan_with_eval(
            tvec!(input.clone().into()),
            |ctx, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, inputs);
                let spent = t.elapsed();
                *this_run.entry(node.op().name().to_string()).or_default() += spent;
                if run > 0 {
                    per_node
                        .entry((node.id, format!("{} ({})", node.name, node.op().name())))
                        .or_default()
                        .push(spent);
                }
                out
            },
        )?;
        if run > 0 {
            totals.push(started.elapsed());
            for (op, d) in this_run {
                per_op.entry(op).or_default().push(d);
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    let total = median(&mut totals);
    println!(
        "optimised plan, median of {runs} runs: {total:.3} ms ({:.2} GMAC/s)",
        total_macs as f64 / total / 1e6
    );
    let mut rows: Vec<(String, f64)> = per_op
        .iter_mut()
        .map(|(op, v)| (op.clone(), median(v)))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (op, ms) in rows {
        println!("  {op:<32} {ms:>8.3} ms {:>5.1} %", 100.0 * ms / total);
    }
    let mut nodes: Vec<(String, f64)> = per_node
        .iter_mut()
        .map(|((_, name), v)| (name.clone(), median(v)))
        .collect();
    nodes.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("slowest nodes:");
    for (name, ms) in nodes.into_iter().take(10) {
        println!("  {name:<60} {ms:>8.3} ms");
    }
    Ok(())
}
