# Precompiled headers: parsing LibTorch's <torch/torch.h> costs about 13 s per
# translation unit (CAF's headers about 2 s), most of a clean build. Each target
# below parses them once into a precompiled header that all its sources reuse,
# which roughly halves a clean build (what CI pays, twice: release and asan).
# Configure with -DGT_PCH=OFF to see include mistakes a PCH would hide.
option(GT_PCH "Precompile LibTorch's and CAF's headers per target" ON)
if(NOT GT_PCH)
  return()
endif()

set(GT_PCH_TORCH_TARGETS gt_models gt_data gt_privacy gt_strategies)
set(GT_PCH_TORCH_CAF_TARGETS gt_protocols gt_actors gtune gt_unit_tests)
foreach(target ${GT_PCH_TORCH_TARGETS})
  target_precompile_headers(${target} PRIVATE <torch/torch.h>)
endforeach()
foreach(target ${GT_PCH_TORCH_CAF_TARGETS})
  if(TARGET ${target})
    target_precompile_headers(${target} PRIVATE <torch/torch.h> <caf/all.hpp> <caf/io/all.hpp>)
  endif()
endforeach()
