"""umr.training"""
