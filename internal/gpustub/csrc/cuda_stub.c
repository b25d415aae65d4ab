/*
 * A stand-in for libcuda.so.1 (the CUDA driver API), for tests of gptoss'
 * hardware detection: cuInit, cuDriverGetVersion and cuGetErrorName with the
 * driver API's public signatures and error codes, answering for the
 * scenario chosen with -DSCENARIO_<NAME> (see internal/gpustub).
 * gpustub_cuda_init_count reports how many cuInit calls succeeded.
 *
 * Written for gptoss from the CUDA driver API reference; it is not NVIDIA
 * code.
 */
#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;

enum {
	CUDA_SUCCESS = 0,
	CUDA_ERROR_INVALID_VALUE = 1,
	CUDA_ERROR_NOT_INITIALIZED = 3,
	CUDA_ERROR_NO_DEVICE = 100,
	CUDA_ERROR_UNKNOWN = 999,
};

#if defined(SCENARIO_MIG) || defined(SCENARIO_PASCAL)
#define VERSION 12020
#elif defined(SCENARIO_PARTIAL)
#define VERSION 10010
#else
#define VERSION 12040
#endif

static int init_count;

EXPORT int gpustub_cuda_init_count(void) { return init_count; }

EXPORT CUresult cuInit(unsigned int flags)
{
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
#ifdef SCENARIO_FAILING
	return CUDA_ERROR_NO_DEVICE; /* what cuInit says when the kernel module is not loaded */
#else
	init_count++;
	return CUDA_SUCCESS;
#endif
}

EXPORT CUresult cuDriverGetVersion(int *version)
{
	if (version == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*version = VERSION;
	return CUDA_SUCCESS;
}

EXPORT CUresult cuGetErrorName(CUresult error, const char **name)
{
	if (name == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	switch (error) {
	case CUDA_SUCCESS: *name = "CUDA_SUCCESS"; break;
	case CUDA_ERROR_INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; break;
	case CUDA_ERROR_NOT_INITIALIZED: *name = "CUDA_ERROR_NOT_INITIALIZED"; break;
	case CUDA_ERROR_NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; break;
	case CUDA_ERROR_UNKNOWN: *name = "CUDA_ERROR_UNKNOWN"; break;
	default: *name = NULL; return CUDA_ERROR_INVALID_VALUE;
	}
	return CUDA_SUCCESS;
}
