"""Datasets: the folder format every stage reads, and one adapter module per dataset (see ``registry``)."""
