//! Every attribution method against Captum on the committed fixtures
//! (tools/make_attr_fixtures.py), on the small net and the reduced torchvision VGG,
//! batch 1 (argmax target) and batch > 1 (given targets).

mod common;
use common::{arc_ctx, fixture, load_tensors, rel_l2};

use std::collections::BTreeMap;

use netlens::explain::gradcam::{default_layer, grad_cam, guided_grad_cam};
use netlens::explain::gradient::{self, Baseline, IgMethod};
use netlens::explain::occlusion::occlusion;
use netlens::explain::resample::Upsample;
use netlens::explain::{Attribution, Target};
use netlens::graph::Net;
use netlens::ops::ReluRule;
use netlens::{model, Array};

const TOL: f64 = 1e-4;

/// Item by item (a good item cannot hide a bad one): relative L2 under TOL.
fn check(name: &str, a: &Attribution, want: &Array, targets: &[usize]) {
    assert_eq!(a.map.shape, want.shape, "{name}");
    assert_eq!(a.targets, targets, "{name} targets");
    let per = want.data.len() / want.batch();
    for (i, (got, w)) in a
        .map
        .data
        .chunks(per)
        .zip(want.data.chunks(per))
        .enumerate()
    {
        let e = rel_l2(got, w);
        assert!(e < TOL, "{name} item {i}: rel L2 {e:.2e}");
    }
}

fn run_all(model_name: &str, layer: &str, other_layer: &str, occ: (usize, usize)) {
    let m = model::load(std::path::Path::new(&fixture(&format!(
        "{model_name}.safetensors"
    ))))
    .unwrap();
    let net = Net::new(arc_ctx(), m).unwrap();
    let io: BTreeMap<String, Array> =
        load_tensors(&fixture(&format!("attr_{model_name}.safetensors")));
    let li = net.model().find(layer).unwrap();
    assert_eq!(
        li,
        default_layer(&net).unwrap(),
        "the default Grad-CAM layer is the ReLU after the last conv"
    );
    let other = net.model().find(other_layer).unwrap();
    // every fixture tensor is compared or used as an input, and each batch size present
    // runs all 14 comparisons: a fixture key that goes missing or unread fails the test
    let used = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let mut batches = 0;
    for b in ["b1", "b2", "b3"] {
        let Some(x) = io.get(&format!("input.{b}")) else {
            continue;
        };
        batches += 1;
        used.borrow_mut().insert(format!("input.{b}"));
        used.borrow_mut().insert(format!("target.{b}"));
        let targets: Vec<usize> = io[&format!("target.{b}")]
            .data
            .iter()
            .map(|v| *v as usize)
            .collect();
        // batch 1 uses the argmax target, as the CLI does without --target
        let target = if x.batch() == 1 {
            Target::Argmax
        } else {
            Target::Each(targets.clone())
        };
        let want = |k: &str| {
            let key = format!("{k}.{b}");
            used.borrow_mut().insert(key.clone());
            io.get(&key)
                .unwrap_or_else(|| panic!("fixture key {key} missing"))
        };
        let tag = |k: &str| format!("{model_name} {b} {k}");
        check(
            &tag("gradient"),
            &gradient::gradient(&net, x, &target, ReluRule::Gradient).unwrap(),
            want("gradient"),
            &targets,
        );
        check(
            &tag("saliency"),
            &gradient::saliency(&net, x, &target).unwrap(),
            want("saliency"),
            &targets,
        );
        check(
            &tag("input_x_gradient"),
            &gradient::input_x_gradient(&net, x, &target).unwrap(),
            want("input_x_gradient"),
            &targets,
        );
        let sg = gradient::smoothgrad_with_noise(&net, x, &target, want("noise")).unwrap();
        check(&tag("smoothgrad"), &sg, want("smoothgrad"), &targets);
        let ig = gradient::integrated_gradients(
            &net,
            x,
            &target,
            &Baseline::Zero,
            8,
            IgMethod::GaussLegendre,
        )
        .unwrap();
        check(
            &tag("ig gausslegendre"),
            &ig,
            want("ig_gausslegendre_zero"),
            &targets,
        );
        let base = Baseline::Given(want("ig_given_baseline").clone());
        let ig =
            gradient::integrated_gradients(&net, x, &target, &base, 6, IgMethod::RiemannTrapezoid)
                .unwrap();
        check(
            &tag("ig trapezoid"),
            &ig,
            want("ig_trapezoid_given"),
            &targets,
        );
        let mean = Baseline::Mean.build(x).unwrap();
        assert!(
            rel_l2(&mean.data, &want("ig_mean_baseline").data) < 1e-6,
            "{}",
            tag("mean baseline")
        );
        let ig = gradient::integrated_gradients(
            &net,
            x,
            &target,
            &Baseline::Zero,
            5,
            IgMethod::RiemannLeft,
        )
        .unwrap();
        check(&tag("ig left"), &ig, want("ig_left_zero"), &targets);
        let gb = gradient::gradient(&net, x, &target, ReluRule::Guided).unwrap();
        check(
            &tag("guided backprop"),
            &gb,
            want("guided_backprop"),
            &targets,
        );
        let dc = gradient::gradient(&net, x, &target, ReluRule::Deconv).unwrap();
        check(&tag("deconvnet"), &dc, want("deconvnet"), &targets);
        let gc = grad_cam(&net, x, &target, li, false, Upsample::Nearest).unwrap();
        check(&tag("grad-cam"), &gc, want("grad_cam"), &targets);
        let gc = grad_cam(&net, x, &target, other, true, Upsample::Bilinear).unwrap();
        check(
            &tag("grad-cam other layer"),
            &gc,
            want("grad_cam_other_relu_bilinear"),
            &targets,
        );
        let ggc = guided_grad_cam(&net, x, &target, li, Upsample::Nearest).unwrap();
        check(
            &tag("guided grad-cam"),
            &ggc,
            want("guided_grad_cam"),
            &targets,
        );
        let oc = occlusion(
            &net,
            x,
            &target,
            (occ.0, occ.0),
            (occ.1, occ.1),
            &netlens::explain::gradient::Baseline::Zero,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        check(&tag("occlusion"), &oc, want("occlusion"), &targets);
    }
    assert_eq!(batches, 2, "{model_name}: a batch-1 and a batched fixture");
    let unread: Vec<&String> = io.keys().filter(|k| !used.borrow().contains(*k)).collect();
    assert!(
        unread.is_empty(),
        "{model_name}: fixture keys never compared: {unread:?}"
    );
}

#[test]
fn small_net_matches_captum() {
    run_all("small", "body.6", "body.2", (5, 3));
}

#[test]
fn torchvision_vgg_matches_captum() {
    run_all("vgg11_tiny", "features.19", "features.13", (8, 4));
}

/// A torchvision ResNet (BasicBlocks) loaded by its names: ReLU rules, Grad-CAM at a
/// block's output and occlusion through residual sums.
#[test]
fn torchvision_resnet_matches_captum() {
    run_all("resnet_basic", "layer4.0", "layer3.0", (8, 4));
}

#[test]
fn batched_passes_split_like_single_ones() {
    // a tape budget that forces one item per pass gives the same maps
    let m = model::load(std::path::Path::new(&fixture("vgg11_tiny.safetensors"))).unwrap();
    let net = Net::new(arc_ctx(), m).unwrap().with_tape_budget(1);
    let io = load_tensors(&fixture("attr_vgg11_tiny.safetensors"));
    let x = &io["input.b2"];
    let t: Vec<usize> = io["target.b2"].data.iter().map(|v| *v as usize).collect();
    let a = gradient::gradient(&net, x, &Target::Each(t.clone()), ReluRule::Gradient).unwrap();
    check("split gradient", &a, &io["gradient.b2"], &t);
}
