# anndata's encoding: X is cells x genes (HDF5 is row-major, so R reads genes x cells); a data frame is a group whose
# attribute _index names its index column; a categorical column is a group of 0-based codes and the categories.
read_frame <- function(file, name) {
  listing <- rhdf5::h5ls(file)
  members <- function(path) listing[listing$group == paste0("/", path), "name"]
  index <- rhdf5::h5readAttributes(file, name)[["_index"]]
  values <- lapply(setNames(nm = setdiff(members(name), index)), function(column) {
    path <- paste0(name, "/", column)
    if ("codes" %in% members(path)) {
      categories <- as.character(rhdf5::h5read(file, paste0(path, "/categories")))
      factor(categories[as.integer(rhdf5::h5read(file, paste0(path, "/codes"))) + 1L], levels = categories)
    } else {
      as.vector(rhdf5::h5read(file, path))
    }
  })
  frame <- S4Vectors::DataFrame(values, check.names = FALSE)
  rownames(frame) <- as.character(rhdf5::h5read(file, paste0(name, "/", index)))
  frame
}

readH5AD <- function(file, ...) {
  X <- rhdf5::h5read(file, "X")
  obs <- read_frame(file, "obs")
  var <- read_frame(file, "var")
  dimnames(X) <- list(rownames(var), rownames(obs))
  SingleCellExperiment::SingleCellExperiment(assays = list(X = X), colData = obs, rowData = var)
}
