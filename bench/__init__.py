"""umr.bench"""
