"""The bimodal dataset: every row has a composition, only some have a structure.

- :class:`Sample`: one row (composition, optional structure, target); defined in the torch-free
  :mod:`cosnet_core.sample` and re-exported here.
- :func:`augment_single_structure_rows`: the augmentation of eq. (13), for the training split only.
- :class:`BimodalDataset`: featurizes every row once (composition graph, crystal graph when there is a structure).
- :func:`collate_bimodal`: batches rows into a :class:`BimodalBatch` whose ``presence`` is p_S of eq. (8); crystal
  graphs are batched only for the rows that have one (``structure_rows`` says which), so the structure encoder never
  sees a placeholder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Dataset
from torch_geometric.data import Batch, Data

from cosnet_core.composition import FormulaError, composition_graph
from cosnet_core.embeddings import ElementEmbedding
from cosnet_core.formula import composition_key  # noqa: F401 - re-exported (its home is the torch-free formula module)
from cosnet_core.sample import Sample, bound_direction  # noqa: F401 - re-exported (torch-free home)
from cosnet_core.structure import (
    DEFAULT_MAX_NEIGHBORS,
    DEFAULT_MAX_SITES,
    DEFAULT_RADIUS,
    GraphCache,
    StructureError,
    crystal_graph,
    structure_hash,
)

AUGMENTED_SUFFIX = "#aug"
MIN_CELL_STD = 1e-3


def _structure_identity(sample: Sample) -> str:
    assert sample.structure is not None
    return sample.structure_id if sample.structure_id else structure_hash(sample.structure)


def augment_single_structure_rows(samples: list[Sample]) -> list[Sample]:
    """Eq. (13): add a composition-only copy of rows whose composition has exactly one structure.

    B = {(c^i, t^i) : there is exactly one s^i in D with f_C(s^i) = c^i}. Apply to the training split only.
    A structure is identified by ``structure_id`` when given, otherwise by its content hash, so several rows that
    share one CIF count as one structure (and each of them gets its copy).

    Args:
        samples: the training samples.

    Returns:
        ``samples`` followed by one copy (``structure=None``, ``structure_id=None``, id suffixed ``"#aug"``) of every
        sample with a structure whose reduced composition has exactly one distinct structure among ``samples``.
    """
    structures_per_composition: dict[str, set[str]] = {}
    for sample in samples:
        if sample.structure is not None:
            key = composition_key(sample.composition)
            structures_per_composition.setdefault(key, set()).add(_structure_identity(sample))
    copies = [
        replace(sample, id=f"{sample.id}{AUGMENTED_SUFFIX}", structure=None, structure_id=None)
        for sample in samples
        if sample.structure is not None
        and len(structures_per_composition[composition_key(sample.composition)]) == 1
    ]
    return [*samples, *copies]


@dataclass
class BimodalItem:
    """One featurized row.

    Attributes:
        id: the sample id.
        composition: ROOST input graph.
        structure: de-CGCNN input graph, or None.
        target: the target (nan when unknown).
        descriptors: raw Magpie statistics of the composition, float32 ``[132]``, or None when the model does not
            use descriptors (:mod:`cosnet_core.descriptors`).
        bound: :func:`bound_direction` of the row's ``censored`` sign (0: a measurement).
    """

    id: str
    composition: Data
    structure: Data | None
    target: float
    descriptors: torch.Tensor | None = None
    bound: int = 0


@dataclass
class BimodalBatch:
    """A batch of rows.

    Attributes:
        composition: composition graphs of every row.
        structure: crystal graphs of the rows that have one, in row order (None when no row has one).
        presence: p_S of eq. (8), float ``[B]`` (1 where the row has a structure).
        structure_rows: long ``[n_with]``, the row of each crystal graph.
        target: float ``[B]`` (nan where unknown).
        ids: the sample ids.
        descriptors: raw composition descriptors ``[B, d]``, or None when the rows carry none.
        bound: long ``[B]``: 0 where the target is a measurement, +1 an upper bound, −1 a lower bound
            (:func:`bound_direction`); None means every row is a measurement.
    """

    composition: Batch
    structure: Batch | None
    presence: torch.Tensor
    structure_rows: torch.Tensor
    target: torch.Tensor
    ids: list[str]
    descriptors: torch.Tensor | None = None
    bound: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> BimodalBatch:
        """The same batch with every tensor on ``device``."""
        return BimodalBatch(
            composition=self.composition.to(device),
            structure=None if self.structure is None else self.structure.to(device),
            presence=self.presence.to(device),
            structure_rows=self.structure_rows.to(device),
            target=self.target.to(device),
            ids=self.ids,
            descriptors=None if self.descriptors is None else self.descriptors.to(device),
            bound=None if self.bound is None else self.bound.to(device),
        )


def collate_bimodal(items: list[BimodalItem]) -> BimodalBatch:
    """Batch featurized rows.

    Args:
        items: rows in order.

    Returns:
        The batch; crystal graphs only for rows with a structure.
    """
    with_structure = [row for row, item in enumerate(items) if item.structure is not None]
    return BimodalBatch(
        composition=Batch.from_data_list([item.composition for item in items]),
        structure=Batch.from_data_list([items[row].structure for row in with_structure])
        if with_structure
        else None,
        presence=torch.tensor(
            [0.0 if item.structure is None else 1.0 for item in items], dtype=torch.float32
        ),
        structure_rows=torch.tensor(with_structure, dtype=torch.long),
        target=torch.tensor([item.target for item in items], dtype=torch.float32),
        ids=[item.id for item in items],
        descriptors=torch.stack([item.descriptors for item in items])
        if items and all(item.descriptors is not None for item in items)
        else None,
        bound=torch.tensor([item.bound for item in items], dtype=torch.long)
        if any(item.bound for item in items)
        else None,
    )


class BimodalDataset(Dataset):
    """Featurized samples (all graphs built once, up front).

    Identical compositions share one composition graph and identical structures one crystal graph.

    Args:
        samples: the rows.
        embedding: element vectors for both graphs.
        cache: optional on-disk cache of crystal graphs.
        radius: neighbour cutoff in Å.
        max_neighbors: neighbours per site.
        max_sites: largest accepted number of sites per structure.
        descriptors: also compute the Magpie statistics of every composition (``TrainConfig.descriptors``).
        structure_features: also attach CHGNet crystal features to every crystal graph as ``universal``
            ``[1, 64]`` (``TrainConfig.structure_features = "chgnet"``, :mod:`cosnet_core.universal`); they are
            cached beside the graph cache when one is given.

    Raises:
        FormulaError: a composition cannot be featurized (the reason names the row id).
        StructureError: a structure cannot be featurized (the reason names the row id).
    """

    def __init__(
        self,
        samples: list[Sample],
        embedding: ElementEmbedding,
        *,
        cache: GraphCache | None = None,
        radius: float = DEFAULT_RADIUS,
        max_neighbors: int = DEFAULT_MAX_NEIGHBORS,
        max_sites: int = DEFAULT_MAX_SITES,
        descriptors: bool = False,
        structure_features: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.embedding = embedding
        composition_graphs: dict[str, Data] = {}
        crystal_graphs: dict[str, Data] = {}
        first_with: dict[str, Sample] = {}  # the first row of each distinct structure (content hash)
        self.items: list[BimodalItem] = []
        for sample in self.samples:
            key = composition_key(sample.composition)
            if key not in composition_graphs:
                try:
                    composition_graphs[key] = composition_graph(sample.composition, embedding)
                except FormulaError as error:
                    raise FormulaError(
                        sample.formula or error.formula, f"row {sample.id}: {error.reason}"
                    ) from error
            graph = None
            if sample.structure is not None:
                try:
                    digest = structure_hash(sample.structure)
                    if digest not in crystal_graphs:
                        first_with[digest] = sample
                        settings = {"radius": radius, "max_neighbors": max_neighbors, "max_sites": max_sites}
                        crystal_graphs[digest] = (
                            cache.get_or_build(sample.structure, embedding, **settings)
                            if cache is not None
                            else crystal_graph(sample.structure, embedding, **settings)
                        )
                    graph = crystal_graphs[digest]
                except StructureError as error:
                    source = sample.structure_id or error.source
                    raise StructureError(source, f"row {sample.id}: {error.reason}") from error
            target = math.nan if sample.target is None else float(sample.target)
            self.items.append(
                BimodalItem(sample.id, composition_graphs[key], graph, target, bound=bound_direction(sample.censored))
            )
        if descriptors and self.samples:
            from cosnet_core.descriptors import magpie_features

            features = torch.from_numpy(magpie_features([s.composition for s in self.samples])).to(torch.float32)
            for item, row in zip(self.items, features, strict=True):
                item.descriptors = row
        if structure_features and crystal_graphs:
            self._attach_universal_features(crystal_graphs, first_with, cache)

    @staticmethod
    def _attach_universal_features(
        crystal_graphs: dict[str, Data], first_with: dict[str, Sample], cache: GraphCache | None
    ) -> None:
        """Set ``graph.universal`` (CHGNet crystal features, ``[1, 64]``) on every crystal graph."""
        from cosnet_core.universal import UniversalFeatureError, chgnet_features

        digests = list(crystal_graphs)
        try:
            features = chgnet_features(
                [first_with[d].structure for d in digests],
                cache_dir=None if cache is None else cache.directory,
                hashes=digests,
                labels=[f"row {first_with[d].id}" for d in digests],
            )
        except UniversalFeatureError as error:
            raise StructureError("CHGNet features", str(error)) from error
        for digest, row in zip(digests, features, strict=True):
            crystal_graphs[digest].universal = torch.from_numpy(row)[None, :]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> BimodalItem:
        return self.items[index]

    def cell_descriptor_stats(self, cell_features: str = "all") -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the raw cell descriptors over the rows that have a structure.

        A column that is constant gets std 1 (its normalised value is then 0 in training and finite elsewhere);
        other stds are floored at 1e-3. Without any structure: zeros and ones.

        Args:
            cell_features: the descriptors g_S sees (:data:`cosnet_core.models.cosnet.CELL_FEATURE_SETS`).

        Returns:
            ``(mean, std)``, each float32 ``[n]`` with n the number of descriptors of ``cell_features`` (18 for
            "all", :data:`cosnet_core.structure.CELL_DESCRIPTOR_NAMES`).
        """
        from cosnet_core.models.cosnet import cell_feature_names, select_cell_features

        cells = [item.structure.cell for item in self.items if item.structure is not None]
        width = len(cell_feature_names(cell_features))
        if not cells:
            return torch.zeros(width), torch.ones(width)
        stacked = select_cell_features(torch.cat(cells), cell_features).to(torch.float64)
        mean = stacked.mean(dim=0)
        std = stacked.std(dim=0, unbiased=False)
        std = torch.where(std < 1e-8, torch.ones_like(std), std.clamp(min=MIN_CELL_STD))
        return mean.to(torch.float32), std.to(torch.float32)


    def universal_feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the CHGNet crystal features over the rows that have a structure.

        Returns:
            ``(mean, std)``, float32 ``[64]``; std as in :func:`cosnet_core.descriptors.standardization`; zeros and
            ones without any structure.

        Raises:
            ValueError: the dataset was built without structure features.
        """
        from cosnet_core.descriptors import standardization
        from cosnet_core.universal import CHGNET_FEATURE_COUNT

        graphs = [item.structure for item in self.items if item.structure is not None]
        if not graphs:
            return torch.zeros(CHGNET_FEATURE_COUNT), torch.ones(CHGNET_FEATURE_COUNT)
        if any(getattr(graph, "universal", None) is None for graph in graphs):
            raise ValueError("this dataset was built without structure features")
        mean, std = standardization(torch.cat([graph.universal for graph in graphs]).double().numpy())
        return torch.from_numpy(mean).to(torch.float32), torch.from_numpy(std).to(torch.float32)

    def descriptor_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the raw composition descriptors over every row (training split).

        Returns:
            ``(mean, std)``, float32 ``[d]``; std floored at 1e-6 (a constant column maps to 0).

        Raises:
            ValueError: the dataset was built without descriptors.
        """
        from cosnet_core.descriptors import standardization

        if not self.items or any(item.descriptors is None for item in self.items):
            raise ValueError("this dataset was built without descriptors")
        mean, std = standardization(torch.stack([item.descriptors for item in self.items]).double().numpy())
        return torch.from_numpy(mean).to(torch.float32), torch.from_numpy(std).to(torch.float32)


def make_loader(
    dataset: BimodalDataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """A DataLoader of :class:`BimodalBatch` with a seeded order.

    Args:
        dataset: the featurized rows.
        batch_size: rows per batch.
        shuffle: shuffle each epoch.
        seed: seed of the shuffling generator (same seed → same order).

    Returns:
        The loader (single process).
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_bimodal, generator=generator
    )
