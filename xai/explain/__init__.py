"""Explanations of trained jaxdl models: CAM family, LIME, SHAP, occlusion, faithfulness metrics, reports."""
