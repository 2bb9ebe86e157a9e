// engine/cuda/device.cu — CUDA device discovery. The CUDA kernel table (the GPU issue) plugs
// into ct__backend() beside this file. With no GPU or driver, cudaGetDeviceCount fails (error
// 35 on machines without a driver): that is reported as "no device", never as a crash.
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int ct__cuda_device_count(char *why, size_t n) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        if (why && n) snprintf(why, n, "no usable CUDA device (%s)", cudaGetErrorString(err));
        cudaGetLastError();   // clear the sticky error
        return 0;
    }
    if (count == 0 && why && n) snprintf(why, n, "no CUDA device present");
    return count;
}
