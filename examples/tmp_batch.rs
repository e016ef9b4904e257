use std::time::Instant;
use tract_onnx::prelude::*;
fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let side: usize = args[2].parse()?;
    let n: usize = args[3].parse()?;
    let input: Tensor = tract_ndarray::ArrayD::<f32>::from_elem(vec![n, 3, side, side], 0.1).into();
    for symbolic in [true, false] {
        let model = facegate::onnx_ops::onnx().model_for_path(path)?;
        let shape: TVec<TDim> = if symbolic {
            let s = model.sym("N");
            tvec![s.to_dim(), 3.to_dim(), side.to_dim(), side.to_dim()]
        } else {
            tvec![n.to_dim(), 3.to_dim(), side.to_dim(), side.to_dim()]
        };
        let plan = model
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))?
            .into_optimized()?
            .into_runnable()?;
        let mut v = vec![];
        for _ in 0..30 {
            let t = Instant::now();
            plan.run(tvec!(input.clone().into()))?;
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        v.sort_by(|a, b| a.total_cmp(b));
        println!("symbolic={symbolic} n={n}: {:.3} ms", v[15]);
    }
    Ok(())
}
