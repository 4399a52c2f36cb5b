# Debian's dplyr is 1.0.10; the scripts' summary printout uses summarize(.by =), which came in dplyr 1.1. Once dplyr
# is attached, a summarize that understands .by is put in front of it (the same numbers: group, summarise, ungroup).
setHook(packageEvent("dplyr", "attach"), function(...) {
  by_aware <- function(.data, ..., .by = NULL) {
    grouped <- dplyr::group_by(.data, dplyr::across({{ .by }}))
    dplyr::summarise(grouped, ..., .groups = "drop")
  }
  attach(list(summarize = by_aware, summarise = by_aware), name = "dplyr_1.1_summarize_by", warn.conflicts = FALSE)
})
