# Every public name of the Python package, and the R export that reaches it (or why none needs to). The test fails
# on a Python name missing from this table, on a name here that Python no longer has, and on an R function named
# here that the package does not export.
#
# A value that is not an R export starts with "-": the justification.
PARITY <- c(
  # linpert
  Condition = "condition_table",
  parse_condition = "condition_table",
  canonical_names = "canonical_conditions",
  condition_table = "condition_table",
  pseudobulk = "pseudobulk",
  as_pseudobulk = "- R's pseudobulk is a SummarizedExperiment with a logcounts assay; every function takes one",
  # linpert.datasets
  datasets.DownloadError = "- an R condition: linpert_download_error",
  datasets.RESOURCES = "list_resources",
  datasets.Resource = "list_resources",
  datasets.adamson = "load_dataset",
  datasets.data_dir = "linpert_data_dir",
  datasets.describe_file = "describe_file",
  datasets.fetch = "fetch_resource",
  datasets.list_resources = "list_resources",
  datasets.load = "load_dataset",
  datasets.norman = "load_dataset",
  datasets.norman_gears = "load_dataset",
  datasets.read_anndata = "read_anndata",
  datasets.read_gears = "read_gears",
  datasets.read_scfoundation_norman = "read_scfoundation_norman",
  datasets.replogle_k562 = "load_dataset",
  datasets.replogle_rpe1 = "load_dataset",
  datasets.saturating_response = "saturating_response",
  datasets.simulate = "simulate_screen",
  # linpert.splits
  splits.SPLITS = "make_split",
  splits.Split = "make_split",
  splits.double_split = "make_split",
  splits.make_split = "make_split",
  splits.simulation_split = "make_split",
  # linpert.models
  models.MODELS = "list_models",
  models.Additive = "model_spec",
  models.FunctionModel = "custom_model",
  models.LinearModel = "model_spec",
  models.Mean = "model_spec",
  models.NoChange = "model_spec",
  models.PerturbationModel = "custom_model",
  models.TransferModel = "model_spec",
  models.make_model = "fit_model",
  models.parse_model_spec = "model_spec",
  models.pca_gene_scores = "pca_gene_scores",
  models.resolve_models = "run_benchmark",
  models.spec_label = "- parses the command line's --models text; R takes a vector or a named list",
  models.split_model_specs = "- parses the command line's --models text; R takes a vector or a named list",
  # linpert.metrics
  metrics.DifferentialExpression = "differential_expression",
  metrics.METRICS = "list_metrics",
  metrics.Metric = "list_metrics",
  metrics.Scoring = "register_metric",
  metrics.bootstrap_ratio = "bootstrap_ratio",
  metrics.centroid_accuracy = "score_predictions",
  metrics.de_overlap = "score_predictions",
  metrics.differential_expression = "differential_expression",
  metrics.discrimination_score = "score_predictions",
  metrics.forest_table = "forest_table",
  metrics.l2 = "score_predictions",
  metrics.l2_by_n = "l2_by_n",
  metrics.l2_grid = "l2_by_n",
  metrics.mae = "score_predictions",
  metrics.mse = "score_predictions",
  metrics.pearson_delta = "score_predictions",
  metrics.pearson_delta_perturbed = "score_predictions",
  metrics.prediction_spread = "prediction_spread",
  metrics.r2 = "score_predictions",
  metrics.register_metric = "register_metric",
  metrics.replicate_ceiling = "replicate_ceiling",
  metrics.scaled_scores = "calibrated_scores",
  metrics.score = "score_predictions",
  metrics.scorecard = "scorecard",
  metrics.top_expressed_genes = "top_expressed_genes",
  # linpert.interactions
  interactions.FDP_GRID = "evaluate_interactions",
  interactions.LOCFDR_FALLBACKS = "- the runner's retries after a failed fit; call_interactions() takes locfdr's arguments",
  interactions.OBSERVED_CLASSES = "call_interactions",
  interactions.PREDICTED_CLASSES = "evaluate_interactions",
  interactions.ZERO_DEVIATION = "evaluate_interactions",
  interactions.InteractionCalls = "call_interactions",
  interactions.InteractionEvaluation = "evaluate_interactions",
  interactions.LocfdrError = "- an R condition: linpert_locfdr_error",
  interactions.LocfdrResult = "locfdr_port",
  interactions.additive_deviation = "additive_deviation",
  interactions.auprc = "evaluate_interactions",
  interactions.average_curves = "evaluate_interactions",
  interactions.call_interactions = "call_interactions",
  interactions.classify_deviations = "call_interactions",
  interactions.classify_observed = "call_interactions",
  interactions.classify_prediction = "evaluate_interactions",
  interactions.evaluate_interactions = "evaluate_interactions",
  interactions.interaction_pairs = "evaluate_interactions",
  interactions.locfdr = "locfdr_port",
  interactions.mean_se = "evaluate_interactions",
  interactions.predicted_deviation = "evaluate_interactions",
  interactions.predicts_no_interactions = "evaluate_interactions",
  interactions.recurrence = "evaluate_interactions",
  interactions.roc_auc = "evaluate_interactions",
  interactions.thresholds = "call_interactions",
  interactions.top_predictions = "evaluate_interactions",
  interactions.tpr_fdp_curve = "evaluate_interactions",
  # linpert.benchmark
  benchmark.BenchmarkResult = "run_benchmark",
  benchmark.run = "run_benchmark",
  # linpert.published
  published.CITATION = "- citation(\"linpert\") (inst/CITATION)",
  published.DATASETS = "published_summary",
  published.MODEL_SPECS = "model_spec",
  published.TABLES = "published_tables",
  published.fidelity = "published_fidelity",
  published.interactions = "published_table",
  published.l2_by_n = "published_table",
  published.resources = "published_table",
  published.results = "published_results",
  published.summary = "published_summary",
  published.table = "published_table",
  # linpert.submission
  submission.calibrated = "calibrated_table",
  submission.score_submission = "score_files",
  # linpert.plot
  plot.CAPTIONS = "figure_captions",
  plot.RunFolder = "read_run",
  plot.beeswarm_l2 = "plot_l2",
  plot.class_mosaic = "plot_class_mosaic",
  plot.dataset_overview = "plot_dataset_overview",
  plot.deviation_qq = "plot_deviation_qq",
  plot.deviation_scatter = "plot_deviation_scatter",
  plot.display_name = "display_name",
  plot.figure_bytes = "- a matplotlib figure's bytes; R's figures are ggplot objects (ggplot2::ggsave())",
  plot.figure_names = "figure_names",
  plot.figures = "write_figures",
  plot.forest = "plot_forest",
  plot.gene_predictions = "plot_gene_predictions",
  plot.interaction_classes = "plot_interaction_classes",
  plot.l2_by_n = "plot_l2_by_n",
  plot.locfdr_histogram = "plot_locfdr_histogram",
  plot.model_colours = "model_colours",
  plot.observed_vs_predicted = "plot_observed_vs_predicted",
  plot.pearson_delta = "plot_l2",
  plot.precision_recall_roc = "plot_precision_recall_roc",
  plot.prediction_spread = "plot_prediction_spread",
  plot.ranking_curves = "plot_precision_recall_roc",
  plot.resources = "plot_resources",
  plot.scorecard_heatmap = "plot_scorecard",
  plot.start_figures = "- draws a run's figures in the background while a Python run scores; write_figures() after",
  plot.tpr_fdp = "plot_tpr_fdp",
  plot.transfer_error = "plot_transfer_error",
  plot.write_figures = "write_figures",
  # linpert.report
  report.write_report = "write_report",
  # linpert.adapters
  adapters.ADAPTERS = "list_models",
  adapters.CpaModel = "model_spec",
  adapters.EmbeddingDecoder = "model_spec",
  adapters.GearsModel = "model_spec",
  adapters.GeneformerDecoder = "model_spec",
  adapters.Runtime = "model_spec",
  adapters.ScBertDecoder = "model_spec",
  adapters.ScFoundationModel = "model_spec",
  adapters.ScGptModel = "model_spec",
  adapters.Stack = "model_spec",
  adapters.StateModel = "model_spec",
  adapters.StackInstallError = "- an R condition: linpert_model_error",
  adapters.UceDecoder = "model_spec",
  adapters.WorkerError = "- an R condition: linpert_model_error",
  adapters.WorkerModel = "model_spec",
  adapters.write_geneformer_model = "write_geneformer_model",
  adapters.write_go_files = "write_go_files",
  adapters.write_scgpt_checkpoint = "write_scgpt_checkpoint",
  adapters.write_scbert_model = "write_scbert_model",
  adapters.write_uce_model = "write_uce_model",
  # linpert.embeddings
  embeddings.SPEC_KINDS = "load_embedding",
  embeddings.EmbeddingSpec = "load_embedding",
  embeddings.go_embedding = "go_embedding",
  embeddings.is_embedding_spec = "load_embedding",
  embeddings.jaccard_go_graph = "jaccard_go_graph",
  embeddings.layer_norm = "read_scfoundation_gene_embedding",
  embeddings.load_embedding = "load_embedding",
  embeddings.normalize_signs = "go_embedding",
  embeddings.parse_embedding_spec = "load_embedding",
  embeddings.random_embedding = "random_embedding",
  embeddings.read_embedding_table = "read_embedding_table",
  embeddings.read_gene2go = "read_gene2go",
  embeddings.read_go_edges = "read_go_edges",
  embeddings.read_go_embedding = "read_go_embedding",
  embeddings.read_scfoundation_gene_embedding = "read_scfoundation_gene_embedding",
  embeddings.read_scgpt_gene_embedding = "read_scgpt_gene_embedding",
  embeddings.transfer_embedding = "transfer_embedding",
  # linpert.convert
  convert.from_sce = "as_anndata",
  convert.to_sce = "as_sce"
)

test_that("every public Python name is reached from R or justified, and every R function named is exported", {
  skip_without_linpert()
  lp <- linpert_python()
  importlib <- reticulate::import("importlib")
  python <- names(lp$`_EXPORTS`)
  for (module in unlist(lp$`_SUBMODULES`)) {
    names <- unlist(importlib$import_module(paste0("linpert.", module))$`__all__`)
    python <- c(python, paste0(module, ".", names))
  }
  unmatched <- setdiff(python, names(PARITY))
  expect(length(unmatched) == 0, paste("Python names with no R counterpart or justification:",
                                        paste(unmatched, collapse = ", ")))
  stale <- setdiff(names(PARITY), python)
  expect(length(stale) == 0, paste("Names in PARITY that Python no longer has:", paste(stale, collapse = ", ")))
  functions <- unique(PARITY[!startsWith(PARITY, "-")])
  missing <- setdiff(functions, getNamespaceExports("linpert"))
  expect(length(missing) == 0, paste("R functions in PARITY that linpert does not export:",
                                      paste(missing, collapse = ", ")))
  # every R export is used: reached from a Python name, or one of R's own
  own <- c("linpert_python", "linpert_available", "linpert_python_path", "as_sce", "as_anndata", "dataset_cached",
           "write_split", "read_split", "plot_l2", "plot_forest", "plot_tpr_fdp", "custom_model", "fit_model")
  unused <- setdiff(getNamespaceExports("linpert"), c(functions, own))
  expect(length(unused) == 0, paste("R exports that no Python name maps to:", paste(unused, collapse = ", ")))
})
