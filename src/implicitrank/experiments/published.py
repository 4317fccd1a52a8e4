"""The published values our claims are compared with, each with its paper, its place there and how it was obtained.

``how`` is ``stated`` (a number in the paper's text or a table) or ``read off a plot`` (shown as ≈; about ±5%).
Values we derive ourselves (a formula, a re-run) are never here: a claim names them in its ``derived`` field.
The values were transcribed from the papers into the project's reference notes (set-ups and numbers of the four
papers); the papers themselves are the sources cited.

References
----------
ARORA2019: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019.
RAZIN2020: N. Razin, N. Cohen, "Implicit Regularization in Deep Learning May Not Be Explainable by Norms",
NeurIPS 2020.
RAZIN2021: N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Tensor Factorization", ICML 2021.
RAZIN2022: N. Razin, A. Maman, N. Cohen, "Implicit Regularization in Hierarchical Tensor Factorization and Deep
Convolutional Neural Networks", ICML 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

ARORA2019 = "Arora et al. 2019"
RAZIN2020 = "Razin & Cohen 2020"
RAZIN2021 = "Razin, Maman & Cohen 2021"
RAZIN2022 = "Razin, Maman & Cohen 2022"
HOWS = ("stated", "read off a plot")


@dataclass(frozen=True)
class Published:
    """A value from a paper, with its place there and how it was obtained.

    Attributes
    ----------
    value : float, tuple or str
        A number, a tuple of numbers, or a qualitative statement.
    paper : str
        The paper (``ARORA2019``, ``RAZIN2020``, ``RAZIN2021``, ``RAZIN2022``).
    where : str
        The figure, table or section.
    how : str
        ``stated`` or ``read off a plot``.

    Raises
    ------
    ValueError
        On construction, when ``how`` is not one of ``HOWS``.
    """

    value: float | tuple | str
    paper: str
    where: str
    how: str

    def __post_init__(self) -> None:
        if self.how not in HOWS:
            raise ValueError(f"how must be one of {HOWS}, got {self.how!r}")

    def render(self) -> str:
        """The value, ≈ when read off a plot, with its paper, place and how it was obtained.

        Returns
        -------
        str
            E.g. ``≈0.03 (Razin, Maman & Cohen 2021, Figure 2 (std 1e-2, final error), read off a plot)``.
        """
        approx = "≈" if self.how == "read off a plot" else ""
        value = self.value if isinstance(self.value, str) else (
            "[" + ", ".join(f"{approx}{v:g}" for v in self.value) + "]" if isinstance(self.value, tuple)
            else f"{approx}{self.value:g}")
        return f"{value} ({self.paper}, {self.where}, {self.how})"

    def entry(self, k: int) -> Published:
        """The ``k``-th number of a tuple value (0-based), as a value of its own.

        Parameters
        ----------
        k : int
            The position in the tuple.

        Returns
        -------
        Published
            The same paper, place (with ``#k+1`` added) and provenance.
        """
        if not isinstance(self.value, tuple):
            raise ValueError(f"entry: the value is not a tuple ({self.value!r})")
        return Published(self.value[k], self.paper, f"{self.where} #{k + 1}", self.how)

    def to_dict(self) -> dict:
        """JSON-ready data.

        Returns
        -------
        dict
            ``value`` (a tuple as a list), ``paper``, ``where``, ``how`` and ``approximate`` (read off a plot).
        """
        return {"value": list(self.value) if isinstance(self.value, tuple) else self.value, "paper": self.paper,
                "where": self.where, "how": self.how, "approximate": self.how == "read off a plot"}


def stated(value, paper: str, where: str) -> Published:
    """A value the paper states in its text or a table."""
    return Published(value, paper, where, "stated")


def plotted(value, paper: str, where: str) -> Published:
    """A value read off one of the paper's plots (≈, about ±5%)."""
    return Published(value, paper, where, "read off a plot")


# --- Arora et al. 2019 ------------------------------------------------------------------------------------------
A19_ERROR_2000 = {"nuclear norm": stated(1.06e-1, ARORA2019, "Table 1 (2000 observations, completion)"),
                  2: stated(5.92e-2, ARORA2019, "Table 1 (2000 observations, completion)"),
                  3: stated(2.58e-5, ARORA2019, "Table 1 (2000 observations, completion)")}
A19_DEEP_RECOVERS = plotted("depths 3, 4 ≈2–4e-5 at every init", ARORA2019, "Figure 2, 2000 observations")
A19_NN_FAILS = plotted(1.1e-1, ARORA2019, "Figure 2, 2000 observations: the minimum nuclear norm's error")
A19_NORM_VS_ERROR = plotted("depth 3/4 nuclear norm ≈219.4 > min nuclear norm 210.15 (ratio ≈1.044), error "
                            "≈2–4e-5 < 1.1e-1", ARORA2019, "Figure 2, 2000 observations")
A19_DEEP_ERANK = plotted(4.95, ARORA2019, "Figure 2, effective rank (truth ≈4.9)")
A19_NN_ERANK = plotted(9.5, ARORA2019, "Figure 2, effective rank of the min-nuclear-norm solution (truth ≈4.9)")
A19_DEPTH2_INIT = plotted((2.5e-2, 1.1e-1), ARORA2019, "Figure 2, depth-2 error at smallest / largest init")
A19_MANY_RECOVER = plotted(9e-5, ARORA2019, "Figure 2, 5000 observations: worst error")
A19_SENSING = plotted((9e-6, 5e-4, 7.5e-4), ARORA2019, "Figure 2, sensing: depth 3/4, depth 2 (smallest init), "
                                                       "nuclear norm")
A19_FEWER_OBSERVATIONS = stated("deeper factorizations reach low error with fewer observations", ARORA2019,
                                "Figure 1")
A19_MIN_NUCLEAR = stated("every depth N >= 2 ends at a minimum-nuclear-norm solution (gap 0)", ARORA2019,
                         "§3, Theorem 2")
A19_DEPTH1_RISE = plotted("depth 1: the top-10 values rise together to ≈7–12", ARORA2019, "Figure 3 (synthetic)")
A19_DEPTH1_ERROR = stated(0.82, ARORA2019, "Figure 3 (synthetic, depth 1 error)")
A19_DEPTH2_GAP = plotted("depth 2: five values rise to ≈25–46, the rest stay ≈3–6", ARORA2019,
                         "Figure 3 (synthetic)")
A19_DEPTH3_REST = plotted("depth 3: the rest stay ≈0", ARORA2019, "Figure 3 (synthetic)")
A19_DEPTH3_JUMPS = plotted("depth 3: values jump one at a time, ≈8k…15k iterations", ARORA2019,
                           "Figure 3 (synthetic)")
A19_FIRST_JUMP = plotted(8000.0, ARORA2019, "Figure 3 (synthetic, depth 3, first jump)")
A19_ALIGNMENT = plotted("off-diagonal of Uᵀ∇L V shrinks below the diagonal", ARORA2019, "Figure 3")
A19_THEOREM3 = stated("dσ_r/dt = −N (σ_r²)^(1−1/N) ⟨∇L(W), u_r v_rᵀ⟩", ARORA2019, "Theorem 3")
A19_MOVIELENS_TOP = {1: plotted(68.0, ARORA2019, "Figure 3 (MovieLens, depth 1 top value)"),
                     2: plotted(3350.0, ARORA2019, "Figure 3 (MovieLens, depth 2 top value)"),
                     3: plotted(3780.0, ARORA2019, "Figure 3 (MovieLens, depth 3 top value)")}
A19_MOVIELENS_MSE = {1: stated(13.73, ARORA2019, "Figure 3 (MovieLens, depth 1 held-out MSE)"),
                     2: stated(1.45, ARORA2019, "Figure 3 (MovieLens, depth 2 held-out MSE)"),
                     3: stated(1.40, ARORA2019, "Figure 3 (MovieLens, depth 3 held-out MSE)")}

# --- Razin & Cohen 2020 -----------------------------------------------------------------------------------------
R20_W11 = {loss: plotted(value, RAZIN2020, f"Figure 1 (|w11| at loss {loss:g}, depths 3, 4)")
           for loss, value in ((0.13, 1.6), (0.013, 6.0), (1.3e-3, 19.6), (1.3e-4, 62.0), (1e-4, 70.7))}
R20_NORMS_DIVERGE = stated("every norm diverges (70.7 at loss 1e-4, read off Figure 1) while the rank falls",
                           RAZIN2020, "§3-§4, Figure 1")
R20_ERANK = plotted(1.0, RAZIN2020, "Figure 2 (effective rank at the end; min-norm completion: 2)")
R20_LOWER_BOUND = stated("|w11| >= (1 − √(2ℓ))² / √(2ℓ) wherever det W > 0", RAZIN2020, "§3")
R20_DET_SIGN = stated("gradient flow keeps the sign of det W", RAZIN2020, "§3 (Lemma)")
R20_PERTURBED = stated("for ε > 0 the rank-1 completion has w11 = −1/ε and gradient descent heads there",
                       RAZIN2020, "§4.2 (perturbed problem)")
R20_TC_RANK1 = plotted(1.0, RAZIN2020, "§5, Figure 3 (order 3, rank 1, init 1e-3: learned tensor rank)")
R20_TC_ERROR = {100: plotted(4e-3, RAZIN2020, "§5, Figure 3 (order 3, rank 1, init 1e-3, 100 observations)"),
                200: plotted(5e-6, RAZIN2020, "§5, Figure 3 (order 3, rank 1, init 1e-3, 200 observations)"),
                511: plotted(5e-7, RAZIN2020, "§5, Figure 3 (order 3, rank 1, init 1e-3, 511 observations)")}
R20_TC_LARGE_RANK = plotted(4.0, RAZIN2020, "§5, Figure 3 (order 3, rank 1, init 1e-2: rank at 50 observations)")
R20_TC_LARGE_ERROR = plotted(4e-4, RAZIN2020, "§5, Figure 3 (order 3, rank 1, init 1e-2: error from 400)")
R20_TC_BASELINE_RANK = plotted("12–17", RAZIN2020, "§5, Figure 3 (zero-filled baseline's tensor rank, its range)")
R20_TC_ORDER4 = {"1e-3": plotted(5e-7, RAZIN2020, "§5, Figure 3 (order 4, rank 1, init 1e-3, from 1000)"),
                 "1e-2": plotted(2e-5, RAZIN2020, "§5, Figure 3 (order 4, rank 1, init 1e-2, from 1500)")}
R20_TC_SMALLER_INIT = plotted("init 1e-3 below init 1e-2", RAZIN2020, "§5, Figure 3")

# --- Razin, Maman & Cohen 2021 ----------------------------------------------------------------------------------
R21_TAKEOFFS = plotted((4200.0, 5300.0, 7000.0, 9800.0, 11300.0), RAZIN2021, "Figure 2 (std 5e-3, take-offs)")
R21_FINAL_NORMS = plotted((0.60, 0.59, 0.41, 0.31, 0.21), RAZIN2021, "Figure 2 (std 5e-3, final component norms)")
R21_ERRORS = {5e-3: plotted(0.005, RAZIN2021, "Figure 2 (std 5e-3, final error)"),
              1e-2: plotted(0.03, RAZIN2021, "Figure 2 (std 1e-2, final error)"),
              5e-2: plotted(0.08, RAZIN2021, "Figure 2 (std 5e-2, final error)")}
R21_RANK_LEARNED = plotted(5.0, RAZIN2021, "§5.1, Figure 2 (five components learned = the rank)")
R21_INCREMENTAL = plotted("components learned one at a time", RAZIN2021, "§5.1, Figure 2")
R21_SMALLER_BETTER = stated("smaller init ⇒ more incremental ⇒ better recovery", RAZIN2021, "§5.1, Figure 2")
R21_NATURAL = {  # (dataset, variant, R, split) -> error (MSE/4)
    ("mnist", "original", 1, "train"): 0.022, ("mnist", "original", 1, "test"): 0.024,
    ("mnist", "original", 15, "train"): 0.0025, ("mnist", "original", 15, "test"): 0.029,
    ("mnist", "random-images", 1, "train"): 0.09, ("mnist", "random-labels", 1, "train"): 0.09,
    ("mnist", "random-images", 15, "train"): 0.015, ("mnist", "random-labels", 15, "train"): 0.044,
    ("mnist", "random-images", 15, "test"): 0.15, ("mnist", "random-labels", 15, "test"): 0.15,
    ("fashion-mnist", "original", 1, "train"): 0.033, ("fashion-mnist", "original", 15, "train"): 0.009,
    ("fashion-mnist", "original", 1, "test"): 0.037, ("fashion-mnist", "original", 15, "test"): 0.056}
# papers.md gives these as numbers, all but the ≈0.09 and ≈0.15 of the random variants, which are read off the plot
R21_NATURAL_READ_OFF = {("mnist", "random-images", 1, "train"), ("mnist", "random-labels", 1, "train"),
                        ("mnist", "random-images", 15, "test"), ("mnist", "random-labels", 15, "test")}
R21_NATURAL_PUBLISHED = {
    key: (plotted if key in R21_NATURAL_READ_OFF else stated)(
        value, RAZIN2021, f"§5.2, Figure 3 ({key[0]}, {key[1]}, R={key[2]}, {key[3]})")
    for key, value in R21_NATURAL.items()}
R21_NATURAL_CLAIM = stated("natural data is fit well at very low tensor rank, random data is not", RAZIN2021,
                           "§5.2, Figure 3 (shown on MNIST / Fashion-MNIST; our digits are another data set)")

# --- Razin, Maman & Cohen 2022 ----------------------------------------------------------------------------------
R22_FINAL = {"matrix": plotted((38.0, 34.0, 28.0, 23.0, 20.0), RAZIN2022, "dynamics figure, MF singular values"),
             "cp": plotted((38.0, 36.0, 24.0, 22.0, 17.0), RAZIN2022, "dynamics figure, CP component norms"),
             "hierarchical": plotted((9.5, 5.0, 2.5, 1.5, 0.8), RAZIN2022,
                                     "dynamics figure, HT root local component norms")}
R22_LAST_TAKEOFF = {"matrix": plotted(5000.0, RAZIN2022, "dynamics figure, MF: all five learned by"),
                    "cp": plotted(7000.0, RAZIN2022, "dynamics figure, CP: all five learned by"),
                    "hierarchical": plotted(32000.0, RAZIN2022, "dynamics figure, HT: last take-off")}
R22_FIRST_TAKEOFF = {"hierarchical": plotted(10000.0, RAZIN2022, "dynamics figure, HT: first take-off")}
R22_RANK = plotted(5.0, RAZIN2022, "dynamics figure, MF and CP: five quantities learned, their targets' rank")
R22_INCREMENTAL = plotted("learned one at a time", RAZIN2022, "dynamics figure")
R22_LOCALITY_WHERE = {"is-same-class": "§5, Is Same Class figure (CIFAR-10)", "pathfinder": "§5, Pathfinder figure"}
