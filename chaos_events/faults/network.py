"""network faults. (Placeholder until this family is written.)"""
