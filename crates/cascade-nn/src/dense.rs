//! Dense parameters (MLP layers, attention and GRU weights, cross layers):
//! small matrices every step updates in full, trained with AdamW.
//!
//! candle-nn's `VarMap` initialises from candle's unseeded thread RNG; a
//! training run must repeat exactly for the same seed, so parameters are
//! registered here with a fixed per-(seed, name, index) initialisation.
//!
//! Shapes: a [`Mlp`] maps `… × in` to `… × out` through ReLU hidden layers.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW};

use crate::embedding::mix;

/// Every dense parameter of one model, by name, with its optimizer.
pub struct DenseParams {
    seed: u64,
    vars: Vec<(String, Var)>,
    optimizer: Option<AdamW>,
    fused: Option<FusedAdam>,
    lr: f64,
}

/// AdamW moments for [`DenseParams::step_with_gradients`], by parameter index.
struct FusedAdam {
    step: i32,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl std::fmt::Debug for DenseParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("DenseParams").field("vars", &names).field("lr", &self.lr).finish()
    }
}

/// A frozen copy of every dense tensor, e.g. the best epoch so far.
#[derive(Debug, Clone)]
pub struct DenseSnapshot(Vec<(String, Tensor)>);

impl DenseParams {
    /// An empty registry; parameters drawn from `seed`, trained at learning rate `lr`.
    pub fn new(seed: u64, lr: f64) -> DenseParams {
        DenseParams { seed, vars: Vec::new(), optimizer: None, fused: None, lr }
    }

    /// Registers a parameter of `shape`, uniform in ±`scale`.
    pub fn uniform(
        &mut self,
        name: &str,
        shape: &[usize],
        scale: f32,
    ) -> candle_core::Result<Tensor> {
        assert!(
            self.vars.iter().all(|(existing, _)| existing != name),
            "dense parameter `{name}` registered twice"
        );
        let count: usize = shape.iter().product();
        let base =
            mix(self.seed ^ mix(name.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64)));
        let values: Vec<f32> = (0..count as u64)
            .map(|i| {
                let unit = (mix(base ^ i) >> 40) as f32 / (1u64 << 24) as f32;
                (unit * 2.0 - 1.0) * scale
            })
            .collect();
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, &Device::Cpu)?)?;
        let tensor = var.as_tensor().clone();
        self.vars.push((name.to_owned(), var));
        self.optimizer = None;
        self.fused = None;
        Ok(tensor)
    }

    /// Registers a zero-initialised parameter.
    pub fn zeros(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
        self.uniform(name, shape, 0.0)
    }

    /// Registers a parameter of ones (e.g. a layer-norm gain).
    pub fn ones(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
        let tensor = self.zeros(name, shape)?;
        self.set(name, &Tensor::ones(shape, DType::F32, &Device::Cpu)?)?;
        Ok(tensor)
    }

    /// A fully connected layer `in → out` (Glorot-uniform weights, zero bias).
    pub fn linear(
        &mut self,
        name: &str,
        input: usize,
        output: usize,
    ) -> candle_core::Result<Linear> {
        let scale = (6.0 / (input + output) as f32).sqrt();
        let weight = self.uniform(&format!("{name}.weight"), &[output, input], scale)?;
        let bias = self.zeros(&format!("{name}.bias"), &[output])?;
        Ok(Linear::new(weight, Some(bias)))
    }

    /// An MLP `input → hidden… → output`, ReLU between layers, none after the last.
    pub fn mlp(
        &mut self,
        name: &str,
        input: usize,
        hidden: &[usize],
        output: usize,
    ) -> candle_core::Result<Mlp> {
        let mut layers = Vec::new();
        let mut width = input;
        for (i, &next) in hidden.iter().chain(std::iter::once(&output)).enumerate() {
            layers.push(self.linear(&format!("{name}.{i}"), width, next)?);
            width = next;
        }
        Ok(Mlp { layers })
    }

    /// Changes the learning rate of later steps (e.g. a smaller one for
    /// online updates of a trained model); the optimizer's moments are kept.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
        if let Some(optimizer) = self.optimizer.as_mut() {
            optimizer.set_learning_rate(lr);
        }
    }

    /// One AdamW step on every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        if self.vars.is_empty() {
            return Ok(());
        }
        let optimizer = match self.optimizer.take() {
            Some(optimizer) => optimizer,
            None => {
                let vars = self.vars.iter().map(|(_, var)| var.clone()).collect();
                let params =
                    ParamsAdamW { lr: self.lr, weight_decay: 0.0, ..ParamsAdamW::default() };
                AdamW::new(vars, params)?
            }
        };
        self.optimizer.insert(optimizer).step(grads)
    }

    /// One AdamW step from gradients a fused kernel computed itself, as
    /// (parameter name, gradient of the same shape), in plain Rust: the same
    /// update as [`step`](Self::step) (candle-nn's AdamW, no weight decay)
    /// without a tensor op per parameter. A model trains through one of the
    /// two; each keeps its own moments.
    pub fn step_with_gradients<N: AsRef<str>>(
        &mut self,
        grads: &[(N, Vec<f32>)],
    ) -> candle_core::Result<()> {
        let fused = self.fused.get_or_insert_with(|| FusedAdam { step: 0, moments: Vec::new() });
        fused.step += 1;
        let defaults = ParamsAdamW::default();
        let (beta1, beta2, eps) = (defaults.beta1, defaults.beta2, defaults.eps);
        let scale_m = 1.0 / (1.0 - beta1.powi(fused.step));
        let scale_v = 1.0 / (1.0 - beta2.powi(fused.step));
        for (name, grad) in grads {
            let name = name.as_ref();
            let index = self.vars.iter().position(|(n, _)| n == name).ok_or_else(|| {
                candle_core::Error::Msg(format!("no dense parameter named `{name}`"))
            })?;
            let var = &self.vars[index].1;
            if grad.len() != var.elem_count() {
                return Err(candle_core::Error::Msg(format!(
                    "gradient of `{name}` has {} values, the parameter {}",
                    grad.len(),
                    var.elem_count()
                )));
            }
            if fused.moments.len() <= index {
                fused.moments.resize_with(self.vars.len(), Default::default);
            }
            let (m, v) = &mut fused.moments[index];
            if m.is_empty() {
                *m = vec![0.0; grad.len()];
                *v = vec![0.0; grad.len()];
            }
            let mut theta: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
            for (((theta, g), m), v) in
                theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut())
            {
                let g = f64::from(*g);
                let next_m = f64::from(*m) * beta1 + g * (1.0 - beta1);
                let next_v = f64::from(*v) * beta2 + g * g * (1.0 - beta2);
                *m = next_m as f32;
                *v = next_v as f32;
                let adjusted = (next_m * scale_m) / ((next_v * scale_v).sqrt() + eps);
                *theta = (f64::from(*theta) - self.lr * adjusted) as f32;
            }
            var.set(&Tensor::from_vec(theta, var.dims(), &Device::Cpu)?)?;
        }
        Ok(())
    }

    /// The current values of parameter `name`, row-major.
    pub fn values(&self, name: &str) -> candle_core::Result<Vec<f32>> {
        self.var(name)?.as_tensor().flatten_all()?.to_vec1()
    }

    fn var(&self, name: &str) -> candle_core::Result<&Var> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, var)| var)
            .ok_or_else(|| candle_core::Error::Msg(format!("no dense parameter named `{name}`")))
    }

    /// Copies of every tensor, to restore later or to save.
    pub fn snapshot(&self) -> candle_core::Result<DenseSnapshot> {
        self.vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect::<candle_core::Result<_>>()
            .map(DenseSnapshot)
    }

    /// Puts back the values of `snapshot` (same names and shapes).
    pub fn restore(&mut self, snapshot: &DenseSnapshot) -> candle_core::Result<()> {
        for (name, tensor) in &snapshot.0 {
            self.set(name, tensor)?;
        }
        Ok(())
    }

    /// Overwrites parameter `name` with `value`, e.g. from a checkpoint.
    pub fn set(&mut self, name: &str, value: &Tensor) -> candle_core::Result<()> {
        let var = self.var(name)?;
        if var.dims() != value.dims() {
            return Err(candle_core::Error::Msg(format!(
                "dense parameter `{name}` has shape {:?}, the value {:?}",
                var.dims(),
                value.dims()
            )));
        }
        var.set(&value.to_dtype(DType::F32)?)
    }

    /// Number of scalars.
    pub fn parameter_count(&self) -> usize {
        self.vars.iter().map(|(_, var)| var.elem_count()).sum()
    }
}

impl DenseSnapshot {
    /// (name, tensor) pairs in registration order.
    pub fn tensors(&self) -> &[(String, Tensor)] {
        &self.0
    }
}

/// Fully connected layers with ReLU between them.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// The layers, first to last.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }
}

impl Module for Mlp {
    fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i + 1 < self.layers.len() {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain-Rust AdamW moves parameters as candle-nn's does, step after step.
    #[test]
    fn fused_adam_matches_candle_adamw() {
        let build = || {
            let mut params = DenseParams::new(5, 0.01);
            let mlp = params.mlp("tower", 3, &[4], 2).unwrap();
            (params, mlp)
        };
        let (mut reference, mlp) = build();
        let (mut fused, _) = build();
        let x = Tensor::new(&[[0.5f32, -1.0, 2.0], [1.5, 0.25, -0.75]], &Device::Cpu).unwrap();
        for _ in 0..3 {
            let loss = mlp.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let by_name: Vec<(String, Vec<f32>)> = reference
                .vars
                .iter()
                .map(|(name, var)| {
                    let g = grads.get(var.as_tensor()).unwrap();
                    (name.clone(), g.flatten_all().unwrap().to_vec1().unwrap())
                })
                .collect();
            reference.step(&grads).unwrap();
            fused.step_with_gradients(&by_name).unwrap();
        }
        for ((name, a), (_, b)) in reference.vars.iter().zip(&fused.vars) {
            let a: Vec<f32> = a.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = b.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for (a, b) in a.iter().zip(&b) {
                assert!((a - b).abs() < 1e-5, "{name}: candle {a} vs fused {b}");
            }
        }
        let err = fused.step_with_gradients(&[("nope", vec![0.0])]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn initialisation_is_seeded_and_a_step_moves_every_parameter() {
        let build = |seed| {
            let mut params = DenseParams::new(seed, 0.01);
            let mlp = params.mlp("tower", 4, &[8], 1).unwrap();
            (params, mlp)
        };
        let (a, _) = build(3);
        let (b, _) = build(3);
        let (c, _) = build(4);
        let values = |p: &DenseParams| -> Vec<f32> {
            p.snapshot().unwrap().0[0].1.flatten_all().unwrap().to_vec1().unwrap()
        };
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));

        let (mut params, mlp) = build(3);
        let before = params.snapshot().unwrap();
        let x = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
        let loss = mlp.forward(&x).unwrap().sqr().unwrap().sum_all().unwrap();
        params.step(&loss.backward().unwrap()).unwrap();
        let moved = before
            .0
            .iter()
            .zip(params.snapshot().unwrap().0)
            .filter(|((_, old), (_, new))| {
                (old - new).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
                    > 0.0
            })
            .count();
        // The hidden bias gets no gradient only where every ReLU is off; with
        // all-ones input and 8 units at least one is on.
        assert!(moved >= 3, "{moved} of 4 tensors moved");
        params.restore(&before).unwrap();
        assert_eq!(values(&params), values(&build(3).0));
    }

    #[test]
    fn setting_a_wrong_shape_or_name_is_an_error() {
        let mut params = DenseParams::new(1, 0.01);
        params.linear("out", 3, 1).unwrap();
        let wrong = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(params.set("out.weight", &wrong).unwrap_err().to_string().contains("shape"));
        assert!(params.set("missing", &wrong).unwrap_err().to_string().contains("missing"));
    }
}
