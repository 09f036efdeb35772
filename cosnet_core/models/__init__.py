"""COSNet networks: the composition encoder g_C (ROOST), the structure encoder g_S (de-CGCNN), fusion and head."""

from cosnet_core.models.cgcnn import CGCNNConv, DeCGCNNEncoder
from cosnet_core.models.cosnet import CosNet, CosNetConfig, CosNetOutput
from cosnet_core.models.roost import RoostEncoder

__all__ = ["CGCNNConv", "CosNet", "CosNetConfig", "CosNetOutput", "DeCGCNNEncoder", "RoostEncoder"]
