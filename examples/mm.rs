use candle_core::{D, Device, Module, Tensor};
use std::time::Instant;
fn t(name: &str, f: impl Fn() -> Tensor) {
    f();
    let n = 10;
    let s = Instant::now();
    for _ in 0..n {
        let _ = f();
    }
    let dt = s.elapsed().as_secs_f64() / n as f64;
    println!("{name}: {:.2} ms", dt * 1e3);
}
fn main() -> candle_core::Result<()> {
    let d = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (1, 257, 1408), &d)?;
    let lin = |o: usize, i: usize| {
        evatag::model::linear::Linear::new(
            Tensor::randn(0f32, 0.02, (o, i), &d).unwrap(),
            Some(Tensor::zeros(o, candle_core::DType::F32, &d).unwrap()),
        )
        .unwrap()
    };
    let qkv = lin(4224, 1408);
    let proj = lin(1408, 1408);
    let fc1 = lin(6144, 1408);
    let fc2 = lin(1408, 6144);
    t("qkv", || qkv.forward(&x).unwrap());
    t("3x proj-shaped", || {
        proj.forward(&x).unwrap();
        proj.forward(&x).unwrap();
        proj.forward(&x).unwrap()
    });
    t("proj", || proj.forward(&x).unwrap());
    t("fc1", || fc1.forward(&x).unwrap());
    let h = fc1.forward(&x)?;
    t("fc2", || fc2.forward(&h).unwrap());
    t("gelu", || evatag::model::ops::gelu_erf(&h).unwrap());
    let y = qkv.forward(&x)?;
    let qkv5 = y.reshape((1, 257, 3, 16, 88))?.permute((2, 0, 3, 1, 4))?;
    t("split q,k,v + contiguous", || {
        let q = (qkv5.get(0).unwrap() * 0.1).unwrap().contiguous().unwrap();
        let _k = qkv5.get(1).unwrap().contiguous().unwrap();
        let v = qkv5.get(2).unwrap().contiguous().unwrap();
        q.add(&v).unwrap()
    });
    let q = qkv5.get(0)?.contiguous()?;
    let k = qkv5.get(1)?.contiguous()?;
    let v = qkv5.get(2)?.contiguous()?;
    let q = q.reshape((16, 257, 88))?;
    let k = k.reshape((16, 257, 88))?;
    let v = v.reshape((16, 257, 88))?;
    t("q@kT", || evatag::model::linear::batched_matmul(&q, &k.t().unwrap()).unwrap());
    let s = q.matmul(&k.t()?)?;
    t("softmax", || evatag::model::ops::softmax_last_dim(&s).unwrap());
    let p = evatag::model::ops::softmax_last_dim(&s)?;
    t("p@v", || evatag::model::linear::batched_matmul(&p, &v).unwrap());
    let o = p.matmul(&v)?;
    let o = o.reshape((1, 16, 257, 88))?;
    t("merge heads", || o.transpose(1, 2).unwrap().reshape((1, 257, 1408)).unwrap());
    t("residual add", || (&x + &x).unwrap());
    t("layernorm pieces", || {
        let c = x.broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap()).unwrap();
        let v = c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        c.broadcast_div(&(v + 1e-6).unwrap().sqrt().unwrap()).unwrap()
    });
    Ok(())
}
