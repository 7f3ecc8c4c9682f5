"""umr.runtime"""
