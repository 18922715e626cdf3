"""The Modelyard monitor service: prediction and feedback streams, drift and performance, alerts."""
