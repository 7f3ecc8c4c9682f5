"""umr.export"""
