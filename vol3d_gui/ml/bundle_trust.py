"""What a bundle says about its own answers: the domain check, the uncertainty beside each
probability and the card's operating point (vol3d_gui.ml.domain, .uncertainty, .reliability).

A mixin of ModelBundle: every method needs only ``self.card``, ``self.preprocess`` and, for
the network's half, ``self.model`` (TensorFlow is imported by the modules it calls, lazily).
"""

from __future__ import annotations

import numpy as np

from vol3d_gui.core.volume import Volume


class TrustMixin:
    def analyse_tensor(self, x: np.ndarray):
        """(probabilities, uncertainty, feature_score) for one preprocessed tensor (D, H, W, 1),
        from one compiled pass; feature_score is None when the card has no feature reference."""
        from vol3d_gui.ml.uncertainty import TensorAnalysis

        a = self.assess_tensor(np.asarray(x)[None])
        return TensorAnalysis(a["probabilities"], a["uncertainty"], a["feature_score"])

    def check_domain(self, volume: Volume):
        """DomainCheck(in_domain, score, reasons) of a volume against the card's training domain."""
        return self.assess(volume)[1]

    def predict_with_uncertainty(self, volume: Volume):
        """Prediction(probabilities, uncertainty): MC-dropout predictive entropy in bits."""
        return self.assess(volume)[0]

    def assess(self, volume: Volume):
        """(Prediction, DomainCheck) from one preprocessing and one forward pass."""
        from vol3d_gui.ml import domain
        from vol3d_gui.ml.uncertainty import Prediction

        x = self.preprocess(volume)
        a = self.assess_tensor(x[None])
        check = domain.combine(domain.metadata_ratios(self.card, volume, x), a["feature_score"])
        return Prediction(a["probabilities"], a["uncertainty"]), check

    def assess_detail(self, volume: Volume) -> dict:
        """What the model panel shows for one volume, from one pass: probabilities, uncertainty,
        the spread of each class's probability over the MC-dropout samples (the error bar beside
        each probability), the displayed class and the domain check as a dict."""
        from vol3d_gui.ml import domain

        x = self.preprocess(volume)
        a = self.assess_tensor(x[None])
        check = domain.combine(domain.metadata_ratios(self.card, volume, x), a["feature_score"])
        return {"probabilities": a["probabilities"], "uncertainty": a["uncertainty"], "spread": a["spread"],
                "class_index": self.decide(a["probabilities"]), "domain": check.to_dict()}

    def assess_tensor(self, x: np.ndarray) -> dict:
        """The model's half of ``assess_detail`` for one preprocessed tensor (1, d, h, w, 1):
        probabilities, uncertainty, per-class spread and the feature score (None without a
        reference in the card). What the GUI's ML service answers (it never sees the Volume)."""
        from vol3d_gui.ml import domain
        from vol3d_gui.ml.uncertainty import analyse

        a = analyse(self, x)
        f = domain.feature_score(self.card, a.features)
        return {"probabilities": a.probabilities[0], "uncertainty": float(a.uncertainty[0]),
                "spread": a.mc_std[0], "feature_score": None if f is None else float(f[0])}

    def assess_batch(self, volumes, batch_size: int = 8, progress=None, should_stop=None) -> list:
        """[(Prediction, DomainCheck)] for Volumes or zero-argument loaders, in batches (classify
        all: each item marked in or out of the domain, the worklist sorted by uncertainty).
        ``progress(done, total)`` after each volume; ``should_stop()`` polled per volume (the
        items assessed so far are returned)."""
        from vol3d_gui.ml import domain
        from vol3d_gui.ml.uncertainty import Prediction, analyse

        volumes = list(volumes)
        out: list = []
        pending: list = []

        def flush():
            a = analyse(self, np.stack([x for _, x in pending]))
            f = domain.feature_score(self.card, a.features)
            for i, (meta, _) in enumerate(pending):
                out.append((Prediction(a.probabilities[i], float(a.uncertainty[i])),
                            domain.combine(meta, None if f is None else float(f[i]))))
            pending.clear()

        for i, v in enumerate(volumes):
            if should_stop is not None and should_stop():
                break
            vol = v() if callable(v) else v
            x = self.preprocess(vol)
            pending.append((domain.metadata_ratios(self.card, vol, x), x))
            if len(pending) == batch_size:
                flush()
            if progress is not None:
                progress(i + 1, len(volumes))
        if pending:
            flush()
        return out

    def decide(self, probs) -> int:
        """The class to display: the card's operating point for two classes, else the argmax."""
        from vol3d_gui.ml.reliability import decide

        return decide(self.card, probs)
