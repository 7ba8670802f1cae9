//! A GRU cell with an optional attentional update gate (DIEN's AUGRU), run
//! over left-padded sequences.
//!
//! Shapes: input B × L × I, states B × L × H, mask B × L.
//! Step: r = σ(x_r + h_r), u = σ(x_u + h_u), n = tanh(x_n + r ⊙ h_n),
//! u' = a ⊙ u with AUGRU's attention a (B × 1), h' = (1 − u') ⊙ h + u' ⊙ n;
//! where the mask is 0 the state is carried over unchanged.

use candle_core::{D, Module, Tensor};
use candle_nn::Linear;

use cascade_nn::DenseParams;

/// GRU weights.
#[derive(Debug)]
pub struct GruCell {
    input: Linear,
    hidden: Linear,
    hidden_size: usize,
}

impl GruCell {
    /// A cell `input_size → hidden_size`.
    pub fn new(
        name: &str,
        input_size: usize,
        hidden_size: usize,
        params: &mut DenseParams,
    ) -> candle_core::Result<GruCell> {
        Ok(GruCell {
            input: params.linear(&format!("{name}.input"), input_size, 3 * hidden_size)?,
            hidden: params.linear(&format!("{name}.hidden"), hidden_size, 3 * hidden_size)?,
            hidden_size,
        })
    }

    /// Runs over every position; `attention` (B × L) turns it into an AUGRU.
    /// Returns the states after each position, B × L × H.
    pub fn run(
        &self,
        inputs: &Tensor,
        mask: &Tensor,
        attention: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (batch, steps, _) = inputs.dims3()?;
        let projected = self.input.forward(inputs)?; // B × L × 3H, all steps at once
        let hs = self.hidden_size;
        let mut state = Tensor::zeros((batch, hs), inputs.dtype(), inputs.device())?;
        let mut states = Vec::with_capacity(steps);
        for t in 0..steps {
            let x = projected.narrow(1, t, 1)?.squeeze(1)?;
            let h = self.hidden.forward(&state)?;
            let gate = |tensor: &Tensor, k: usize| tensor.narrow(D::Minus1, k * hs, hs);
            let reset = candle_nn::ops::sigmoid(&(gate(&x, 0)? + gate(&h, 0)?)?)?;
            let mut update = candle_nn::ops::sigmoid(&(gate(&x, 1)? + gate(&h, 1)?)?)?;
            let candidate = (gate(&x, 2)? + (reset * gate(&h, 2)?)?)?.tanh()?;
            if let Some(attention) = attention {
                update = update.broadcast_mul(&attention.narrow(1, t, 1)?)?;
            }
            let next = (&state + (update * (candidate - &state)?)?)?;
            let keep = mask.narrow(1, t, 1)?; // B × 1
            state = (&state + (next - &state)?.broadcast_mul(&keep)?)?;
            states.push(state.clone());
        }
        Tensor::stack(&states, 1)
    }
}
