"""Wire formats: each module turns a request body into a matrix and a prediction into a body."""
