def find_violations(cells, forbidden):
    return {}
