# Precompiled headers: parsing LibTorch's <torch/torch.h> costs about 13 s per
# translation unit (CAF's headers about 2 s), most of a clean build. One
# precompiled header (gt_pch) holds both; every target that includes them reuses
# it, so a clean build parses them once (per-target headers cost ~60-90 s each,
# eight times over: what CI pays, twice: release and asan).
# Configure with -DGT_PCH=OFF to see include mistakes a PCH would hide.
option(GT_PCH "Precompile LibTorch's and CAF's headers once for every target" ON)
if(NOT GT_PCH)
  return()
endif()

# A header precompiled with other flags is invalid (gcc then reparses it and -Winvalid-pch says
# so, an error under GT_WERROR): gt_pch carries the same interface flags as its users.
add_library(gt_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/pch_anchor.cpp)
target_link_libraries(gt_pch PRIVATE torch CAF::core CAF::io)
target_precompile_headers(gt_pch PRIVATE <torch/torch.h> <caf/all.hpp> <caf/io/all.hpp>)

set(GT_PCH_TARGETS gt_models gt_data gt_privacy gt_strategies gt_protocols gt_actors gtune gt_unit_tests)
foreach(target ${GT_PCH_TARGETS})
  if(NOT TARGET ${target})
    continue()
  endif()
  # The unit tests' own flags (GT_UNIT_TEST_FLAGS, e.g. -fno-sanitize=all under asan) differ:
  # they get a header of their own.
  if(target STREQUAL "gt_unit_tests" AND NOT GT_UNIT_TEST_FLAGS STREQUAL "")
    target_precompile_headers(${target} PRIVATE <torch/torch.h> <caf/all.hpp> <caf/io/all.hpp>)
  else()
    target_precompile_headers(${target} REUSE_FROM gt_pch)
  endif()
endforeach()
